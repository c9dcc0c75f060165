from __future__ import annotations

import pytest

from obelisk.core.levels import Level
from obelisk.dicomweb.locate import Target
from obelisk.dicomweb.qido import parse_query
from obelisk.errors import BadRequest


def test_matching_keys_by_keyword_or_tag() -> None:
    query = parse_query(
        Level.STUDY,
        [("PatientName", "DOE^J*"), ("00100020", "P1"), ("StudyDate", "20200101-")],
        None,
    )
    assert query.filters == {0x00100010: "DOE^J*", 0x00100020: "P1", 0x00080020: "20200101-"}


def test_commas_separate_values_only_where_no_value_holds_one() -> None:
    query = parse_query(
        Level.STUDY,
        [
            ("StudyInstanceUID", "1.2,1.3"),
            ("ModalitiesInStudy", "CT,MR"),
            ("StudyDescription", "A,B"),
        ],
        None,
    )
    assert query.filters[0x0020000D] == "1.2\\1.3"
    assert query.filters[0x00080061] == "CT\\MR"
    assert query.filters[0x00081030] == "A,B"


def test_includefield_forms() -> None:
    query = parse_query(
        Level.STUDY,
        [("includefield", "00081030,StudyID"), ("includefield", "00080090"), ("limit", "5")],
        None,
    )
    assert query.include == {0x00081030, 0x00200010, 0x00080090}
    assert not query.include_all
    assert query.limit == 5 and query.offset == 0
    assert parse_query(Level.STUDY, [("includefield", "all")], None).include_all


def test_fuzzy_matching_widens_person_names_only() -> None:
    query = parse_query(
        Level.STUDY,
        [("PatientName", "john"), ("AccessionNumber", "A1"), ("fuzzymatching", "true")],
        None,
    )
    assert query.filters == {0x00100010: "*john*", 0x00080050: "A1"}
    kept = parse_query(Level.STUDY, [("PatientName", "jo*"), ("fuzzymatching", "true")], None)
    assert kept.filters[0x00100010] == "jo*"


def test_nested_urls_add_the_uids() -> None:
    query = parse_query(Level.INSTANCE, [], Target("1.2", "1.2.3"))
    assert query.filters == {0x0020000D: "1.2", 0x0020000E: "1.2.3"}


def test_computed_keys_are_accepted_and_ignored() -> None:
    query = parse_query(Level.STUDY, [("NumberOfStudyRelatedInstances", "3")], None)
    assert query.filters == {}


@pytest.mark.parametrize(
    "pairs",
    [
        [("limit", "x")],
        [("offset", "-2")],
        [("fuzzymatching", "yes")],
        [("NotAKeyword", "1")],
        [("includefield", "NotAKeyword")],
        [("00081110.00081155", "1.2")],
    ],
)
def test_refused_parameters(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(BadRequest):
        parse_query(Level.STUDY, pairs, None)
