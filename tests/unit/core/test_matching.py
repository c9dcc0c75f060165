import pytest

from obelisk.core.matching import ConstraintKind, normalize, parse_constraint
from obelisk.core.tags import parse_tag

PATIENT_NAME = 0x00100010
STUDY_DATE = 0x00080020
STUDY_DESCRIPTION = 0x00081030


def test_universal_values_give_no_constraint() -> None:
    assert parse_constraint(PATIENT_NAME, "", case_sensitive=False) is None
    assert parse_constraint(PATIENT_NAME, "*", case_sensitive=False) is None


def test_person_names_match_without_case_or_accents() -> None:
    constraint = parse_constraint(PATIENT_NAME, "müller*", case_sensitive=False)
    assert constraint is not None and constraint.kind is ConstraintKind.WILDCARD
    assert constraint.matches("MULLER^HANS")
    assert constraint.matches("Müller^Hans")
    assert not constraint.matches("MILLER^HANS")


def test_case_sensitive_person_names_when_asked() -> None:
    constraint = parse_constraint(PATIENT_NAME, "Doe*", case_sensitive=True)
    assert constraint is not None
    assert constraint.matches("Doe^John") and not constraint.matches("DOE^JOHN")


def test_case_insensitive_matching_applies_to_every_string_tag() -> None:
    # Orthanc 1.10.1's /tools/find: "Modality": "ct" finds CT unless CaseSensitive is true.
    constraint = parse_constraint(STUDY_DESCRIPTION, "ct*", case_sensitive=False)
    assert constraint is not None and constraint.matches("CT HEAD")
    constraint = parse_constraint(STUDY_DESCRIPTION, "ct*", case_sensitive=True)
    assert constraint is not None and not constraint.matches("CT HEAD")


@pytest.mark.parametrize("tag", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
def test_wildcards_on_uids_are_refused(tag: str) -> None:
    from obelisk.errors import ParameterOutOfRange

    with pytest.raises(ParameterOutOfRange, match="Wildcards are not allowed"):
        parse_constraint(parse_tag(tag), "1.2.*", case_sensitive=False)


def test_question_mark_matches_one_character_and_brackets_are_literal() -> None:
    constraint = parse_constraint(STUDY_DESCRIPTION, "A?C[1]*", case_sensitive=True)
    assert constraint is not None
    assert constraint.matches("ABC[1] x") and not constraint.matches("ABC1")


@pytest.mark.parametrize(
    ("query", "value", "expected"),
    [
        ("20200101-20201231", "20200615", True),
        ("20200101-20201231", "20210101", False),
        ("20200101-", "20990101", True),
        ("-20200101", "20200101", True),
        ("-20200101", "20200102", False),
    ],
)
def test_date_ranges(query: str, value: str, expected: bool) -> None:
    constraint = parse_constraint(STUDY_DATE, query, case_sensitive=False)
    assert constraint is not None and constraint.kind is ConstraintKind.RANGE
    assert constraint.matches(value) is expected


def test_value_lists() -> None:
    constraint = parse_constraint(parse_tag("Modality"), "CT\\MR", case_sensitive=False)
    assert constraint is not None and constraint.kind is ConstraintKind.LIST
    assert constraint.matches("MR") and not constraint.matches("US")


def test_absent_values_never_match() -> None:
    constraint = parse_constraint(STUDY_DESCRIPTION, "X", case_sensitive=True)
    assert constraint is not None and not constraint.matches(None)


def test_normalize_strips_accents_and_upper_cases() -> None:
    assert normalize("Éloïse^ß") == "ELOISE^SS"


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("PatientName", 0x00100010),
        ("0010,0010", 0x00100010),
        ("0010-0010", 0x00100010),
        ("00100010", 0x00100010),
    ],
)
def test_parse_tag_forms(text: str, tag: int) -> None:
    assert parse_tag(text) == tag


def test_parse_tag_rejects_unknown_names() -> None:
    with pytest.raises(ValueError):
        parse_tag("NoSuchTag")
