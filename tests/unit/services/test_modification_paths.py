"""Paths into sequences in Replace/Remove/Keep, and /tools/bulk-modify|bulk-anonymize.

The expected results are what Orthanc 1.10.1 answers to the same requests on the same files
(``tests/integration/test_modification.py`` compares both servers): same items changed, inserted
and removed, identifiers in items need no ``Force``, a kept path survives the anonymization, the
bulk ``Resources`` output lists the new instances, series, studies then patients, 400 "Parameter
out of range" for a path without an item index, 400 "Bad file format" when ``Resources`` is not a
list of strings.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from starlette.testclient import TestClient

from obelisk.core.levels import Level
from obelisk.core.tags import parse_tag
from obelisk.errors import BadRequest, ParameterOutOfRange
from obelisk.services.context import Services
from obelisk.services.modification import (
    Modification,
    parse_anonymize_request,
    parse_modify_request,
)
from obelisk.services.tag_paths import ANY_ITEM, TagPath
from tests.support.fixtures import with_references

STUDY = "64a773d7-f879e338-2af4417d-1d10b99c-69c0fb8a"
REFERENCED_IMAGE = 0x00081140
REFERENCED_SOP = 0x00081155

Loaded = tuple[Services, TestClient]


def _references(ds: Dataset) -> list[dict[str, str]]:
    return [
        {e.keyword: str(e.value) for e in item} for item in ds.get("ReferencedImageSequence", [])
    ]


@pytest.mark.parametrize(
    "text",
    [
        "ReferencedImageSequence[1].ReferencedSOPInstanceUID",
        "0008,1140[1].0008,1155",
        "(0008,1140)[1].(0008,1155)",
        "00081140[1].ReferencedSOPInstanceUID",
    ],
)
def test_path_spellings(text: str) -> None:
    path = TagPath.parse(text, parse_tag)
    assert path == TagPath(((REFERENCED_IMAGE, 1),), REFERENCED_SOP)
    assert path.format() == "0008,1140[1].0008,1155"
    assert TagPath.parse(path.format(), parse_tag) == path


def test_wildcard_and_bad_paths() -> None:
    path = TagPath.parse("ReferencedImageSequence[*].ReferencedSOPInstanceUID", parse_tag)
    assert path.steps == ((REFERENCED_IMAGE, ANY_ITEM),) and not path.is_plain
    assert path.matches([(REFERENCED_IMAGE, 7)], REFERENCED_SOP)
    assert not path.matches([(REFERENCED_IMAGE, 7)], 0x00081150)
    assert TagPath.parse("PatientName", parse_tag).is_plain
    for bad in ("ReferencedImageSequence.ReferencedSOPInstanceUID", "PatientName[x].PatientID",
                "PatientName[0].PatientID[1]", "PatientName[0]."):  # fmt: skip
        with pytest.raises(ParameterOutOfRange):
            TagPath.parse(bad, parse_tag)


def test_replace_and_remove_in_items() -> None:
    ds = with_references()
    modification = parse_modify_request(
        {
            "Replace": {
                "ReferencedImageSequence[1].ReferencedSOPInstanceUID": "9.9",
                "ReferencedImageSequence[*].ReferencedSOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
                "ReferencedImageSequence[0].ReferencedSegmentNumber": "3",  # inserted
                "ReferencedImageSequence[5].ReferencedSOPInstanceUID": "no such item",
            },
            "Remove": ["ReferencedImageSequence[*].ReferencedFrameNumber"],
        },
        Level.SERIES,
    )
    modification.apply(ds)
    items = _references(ds)
    assert len(items) == 2
    assert items[0]["ReferencedSOPInstanceUID"] == "1.2.3.0"
    assert items[1]["ReferencedSOPInstanceUID"] == "9.9"
    assert all(i["ReferencedSOPClassUID"] == "1.2.840.10008.5.1.4.1.1.2" for i in items)
    assert all("ReferencedFrameNumber" not in i for i in items)
    assert items[0]["ReferencedSegmentNumber"] == "3" and "ReferencedSegmentNumber" not in items[1]

    # the paths go through the job snapshot unchanged
    again = Modification.from_json(modification.to_json())
    assert again.path_replacements == modification.path_replacements
    assert again.path_removals == modification.path_removals


def test_identifiers_in_sequences_need_no_force() -> None:
    level = Level.STUDY
    with pytest.raises(BadRequest, match="Force"):
        parse_modify_request({"Replace": {"SOPInstanceUID": "1.2"}}, level)
    parse_modify_request({"Replace": {"ReferencedImageSequence[0].SOPInstanceUID": "1.2"}}, level)


def test_keep_a_path_in_an_anonymization() -> None:
    ds = with_references()
    kept = "ReferencedImageSequence[0].ReferencedSOPInstanceUID"
    modification = parse_anonymize_request({"Keep": [kept]}, "Anonymized1")
    modification.apply(ds)
    items = _references(ds)
    assert items[0]["ReferencedSOPInstanceUID"] == "1.2.3.0"  # kept
    assert items[1]["ReferencedSOPInstanceUID"] not in ("", "1.2.3.1")  # mapped to a new UID
    plain = parse_anonymize_request({}, "Anonymized1")
    other = with_references()
    plain.apply(other)
    assert all(i["ReferencedSOPInstanceUID"] != "1.2.3.0" for i in _references(other))


def _wait(client: TestClient, path: str) -> dict[str, Any]:
    for _ in range(200):
        info: dict[str, Any] = client.get(path).json()
        if info["State"] in ("Success", "Failure"):
            return info
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_modify_route_with_paths(loaded: Loaded) -> None:
    _, client = loaded
    buffer = io.BytesIO()
    ds = with_references()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.2.999"
    ds.save_as(buffer)
    instance = client.post("/instances", content=buffer.getvalue()).json()["ID"]
    answer = client.post(
        f"/instances/{instance}/modify",
        json={"Replace": {"ReferencedImageSequence[*].ReferencedSOPInstanceUID": "7.7"}},
    )
    assert answer.status_code == 200, answer.text
    items = _references(pydicom.dcmread(io.BytesIO(answer.content)))
    assert [i["ReferencedSOPInstanceUID"] for i in items] == ["7.7", "7.7"]
    bad = client.post(
        f"/instances/{instance}/modify", json={"Remove": ["ReferencedImageSequence.PatientID"]}
    )
    assert bad.status_code == 400 and bad.json()["OrthancStatus"] == 3


def test_bulk_modify(loaded: Loaded) -> None:
    _, client = loaded
    series = client.get(f"/studies/{STUDY}").json()["Series"]
    other = next(s for s in client.get("/series").json() if s not in series)
    wanted = {
        i["ID"] for s in (*series, other) for i in client.get(f"/series/{s}/instances").json()
    }
    answer = client.post(
        "/tools/bulk-modify",
        json={"Resources": [*series, other], "Replace": {"InstitutionName": "BULK"}},
    )
    assert answer.status_code == 200, answer.text
    content = answer.json()
    assert content["InstancesCount"] == len(wanted) and content["FailedInstancesCount"] == 0
    assert content["IsAnonymization"] is False and "ID" not in content
    by_type: dict[str, list[str]] = {}
    for resource in content["Resources"]:
        assert resource["Path"] == f"/{_plural(resource['Type'])}/{resource['ID']}"
        by_type.setdefault(resource["Type"], []).append(resource["ID"])
    assert list(by_type) == ["Instance", "Series", "Study", "Patient"]
    assert len(by_type["Instance"]) == len(wanted)
    # Instance level (the default): only SOPInstanceUID changes, the series stay the same
    assert set(by_type["Series"]) == {*series, other}
    for new_id in by_type["Instance"]:
        tags = client.get(f"/instances/{new_id}/tags?simplify").json()
        assert tags["InstitutionName"] == "BULK"
        source = client.get(f"/instances/{new_id}/metadata/ModifiedFrom").text
        assert source in wanted
    # replacing StudyInstanceUID makes it a study-level modification
    study = client.post(
        "/tools/bulk-modify",
        json={"Resources": [STUDY], "Replace": {"StudyInstanceUID": "1.2.3"}, "Force": True},
    ).json()
    assert [r["ID"] for r in study["Resources"] if r["Type"] == "Study"] != [STUDY]
    bad = client.post("/tools/bulk-modify", json={"Resources": "x"})
    assert bad.status_code == 400 and bad.json()["OrthancStatus"] == 15
    assert client.post("/tools/bulk-modify", json={"Resources": ["nope"]}).status_code == 404


def test_bulk_anonymize_asynchronously(loaded: Loaded) -> None:
    _, client = loaded
    job = client.post(
        "/tools/bulk-anonymize", json={"Resources": [STUDY], "Asynchronous": True}
    ).json()
    info = _wait(client, job["Path"])
    assert info["State"] == "Success", info
    content = info["Content"]
    assert content["IsAnonymization"] is True
    patients = [r["ID"] for r in content["Resources"] if r["Type"] == "Patient"]
    assert len(patients) == 1
    tags = client.get(f"/patients/{patients[0]}").json()["MainDicomTags"]
    assert tags["PatientName"].startswith("Anonymized")
    queued = client.post(
        "/queue/add",
        json={
            "Type": "ResourceModification",
            "Resources": [STUDY],
            "Synchronous": True,
            "Replace": {"InstitutionName": "Q"},
        },
    )
    assert queued.status_code == 200, queued.text


def _plural(type_name: str) -> str:
    return {"Instance": "instances", "Series": "series", "Study": "studies", "Patient": "patients"}[
        type_name
    ]
