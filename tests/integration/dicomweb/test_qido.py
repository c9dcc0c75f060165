"""QIDO-RS through dicomweb-client (and raw URLs where the exact encoding matters)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from requests import HTTPError

from tests.integration.dicomweb.conftest import (
    MULTIFRAME_SOP,
    SERIES,
    SERIES_2,
    STUDY,
    STUDY_2,
    Loaded,
    instance,
)


def values(results: list[dict[str, Any]], tag: str) -> list[Any]:
    return [r[tag]["Value"][0] for r in results if "Value" in r.get(tag, {})]


def study_uids(results: list[dict[str, Any]]) -> list[str]:
    return sorted(values(results, "0020000D"))


def raw(loaded: Loaded, query: str) -> list[dict[str, Any]]:
    """A query sent exactly as written (no client-side encoding)."""
    answer = httpx.get(f"{loaded.root}/{query}", headers={"Accept": "application/dicom+json"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/dicom+json")
    result: list[dict[str, Any]] = answer.json()
    return result


def test_study_search_by_keyword_tag_and_wildcards(loaded: Loaded) -> None:
    client = loaded.client()
    assert study_uids(client.search_for_studies()) == sorted([STUDY, STUDY_2])
    assert study_uids(client.search_for_studies(search_filters={"PatientID": "DW-1"})) == [STUDY]
    assert study_uids(client.search_for_studies(search_filters={"00100020": "DW-2"})) == [STUDY_2]
    assert study_uids(client.search_for_studies(search_filters={"PatientName": "DOE*"})) == [STUDY]
    by_question_mark = client.search_for_studies(search_filters={"PatientName": "D?E^JOHN"})
    assert study_uids(by_question_mark) == [STUDY]
    assert client.search_for_studies(search_filters={"PatientName": "NOBODY*"}) == []


def test_person_names_match_without_case_or_accents(loaded: Loaded) -> None:
    client = loaded.client()
    for name in ("doe*", "müller*", "MULLER^J*", "*jürgen"):
        found = client.search_for_studies(search_filters={"PatientName": name})
        assert len(found) == 1, name
    hit = client.search_for_studies(search_filters={"PatientName": "müller*"})[0]
    assert hit["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "MÜLLER^JÜRGEN"}]}


def test_fuzzy_matching_finds_a_name_part(loaded: Loaded) -> None:
    client = loaded.client()
    found = client.search_for_studies(fuzzymatching=True, search_filters={"PatientName": "JOHN"})
    assert study_uids(found) == [STUDY]
    assert (
        client.search_for_studies(fuzzymatching=False, search_filters={"PatientName": "JOHN"}) == []
    )
    answer = httpx.get(f"{loaded.root}/studies?fuzzymatching=maybe")
    assert answer.status_code == 400


def test_date_ranges(loaded: Loaded) -> None:
    client = loaded.client()
    assert study_uids(
        client.search_for_studies(search_filters={"StudyDate": "20200101-20201231"})
    ) == [STUDY]
    assert study_uids(client.search_for_studies(search_filters={"StudyDate": "20210101-"})) == [
        STUDY_2
    ]
    assert study_uids(client.search_for_studies(search_filters={"StudyDate": "-20200315"})) == [
        STUDY
    ]
    assert study_uids(client.search_for_studies(search_filters={"StudyDate": "20210620"})) == [
        STUDY_2
    ]


def test_percent_encoded_values(loaded: Loaded) -> None:
    assert study_uids(raw(loaded, "studies?PatientName=DOE%5EJ%2A")) == [STUDY]
    assert study_uids(raw(loaded, "studies?PatientName=D%3FE%5EJOHN")) == [STUDY]
    both = raw(loaded, f"studies?StudyInstanceUID={STUDY}%2C{STUDY_2}")
    assert study_uids(both) == sorted([STUDY, STUDY_2])
    assert study_uids(raw(loaded, f"studies?StudyInstanceUID={STUDY}%5C{STUDY_2}")) == sorted(
        [STUDY, STUDY_2]
    )
    assert study_uids(raw(loaded, "studies?ModalitiesInStudy=MR%2CUS")) == [STUDY_2]


def test_default_study_attributes_and_counts(loaded: Loaded) -> None:
    [study] = loaded.client().search_for_studies(search_filters={"StudyInstanceUID": STUDY})
    assert study["00201206"] == {"vr": "IS", "Value": [1]}
    assert study["00201208"] == {"vr": "IS", "Value": [5]}
    assert study["00080061"] == {"vr": "CS", "Value": ["CT"]}
    assert study["00080050"]["Value"] == ["ACC-1"]
    assert study["00081190"]["Value"] == [f"{loaded.root}/studies/{STUDY}"]
    assert "00081030" not in study  # StudyDescription only on request


def test_includefield_forms(loaded: Loaded) -> None:
    client = loaded.client()
    [study] = client.search_for_studies(
        search_filters={"PatientID": "DW-1"}, fields=["StudyDescription", "00080060"]
    )
    assert study["00081030"]["Value"] == ["CT CHEST"]
    assert study["00080060"]["Value"] == ["CT"]
    [encoded] = raw(loaded, "studies?PatientID=DW-1&includefield=00081030%2C00180050")
    assert encoded["00081030"]["Value"] == ["CT CHEST"]
    assert encoded["00180050"] == {"vr": "DS", "Value": [1]}  # SliceThickness, from a file
    [repeated] = raw(loaded, "studies?PatientID=DW-1&includefield=00081030&includefield=00080090")
    assert repeated["00080090"]["Value"] == [{"Alphabetic": "WHO^CARES"}]
    [everything] = raw(loaded, "studies?PatientID=DW-1&includefield=all")
    assert everything["00081030"]["Value"] == ["CT CHEST"]
    assert everything["00080080"]["Value"] == ["SYNTHETIC HOSPITAL"]
    assert httpx.get(f"{loaded.root}/studies?includefield=NoSuchKeyword").status_code == 400


def test_limit_and_offset(loaded: Loaded) -> None:
    client = loaded.client()
    everything = study_uids(client.search_for_studies())
    first = client.search_for_studies(limit=1)
    second = client.search_for_studies(limit=1, offset=1)
    assert len(first) == len(second) == 1
    assert sorted(study_uids(first) + study_uids(second)) == everything
    assert client.search_for_studies(offset=2) == []
    assert httpx.get(f"{loaded.root}/studies?limit=-1").status_code == 400


def test_series_searches(loaded: Loaded) -> None:
    client = loaded.client()
    [series] = client.search_for_series(STUDY)
    assert series["0020000E"]["Value"] == [SERIES]
    assert series["00201209"] == {"vr": "IS", "Value": [5]}
    assert series["00081190"]["Value"] == [f"{loaded.root}/studies/{STUDY}/series/{SERIES}"]
    mr = client.search_for_series(search_filters={"Modality": "MR"})
    assert values(mr, "0020000E") == [SERIES_2]
    assert values(mr, "0020000D") == [STUDY_2]
    assert client.search_for_series(STUDY, search_filters={"Modality": "MR"}) == []


def test_instance_searches(loaded: Loaded) -> None:
    client = loaded.client()
    nested = client.search_for_instances(STUDY, SERIES)
    assert len(nested) == 5
    assert values(nested, "00080016")[0] == "1.2.840.10008.5.1.4.1.1.2"
    in_study = client.search_for_instances(STUDY, search_filters={"InstanceNumber": "2"})
    assert values(in_study, "00080018") == [instance(2)]
    everywhere = client.search_for_instances(search_filters={"SOPInstanceUID": MULTIFRAME_SOP})
    assert values(everywhere, "00280008") == [3]
    assert values(everywhere, "0020000E") == [SERIES]
    assert values(
        client.search_for_instances(search_filters={"PatientID": "DW-2"}), "00080018"
    ) == [instance(10)]


def test_unknown_attribute_is_refused(loaded: Loaded) -> None:
    with pytest.raises(HTTPError):
        loaded.client().search_for_studies(search_filters={"NoSuchKeyword": "x"})
