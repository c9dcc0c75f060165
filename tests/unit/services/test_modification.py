"""Modification and anonymization compared with what Orthanc 1.10.1 produced for the same request
(``tests/fixtures/orthanc-jobs/orthanc-1.10.1.json``, recorded by ``record.py`` next to it)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pydicom
import pytest
from starlette.testclient import TestClient

from obelisk.core.dicom_json import full_tags, shorten
from obelisk.core.levels import Level
from obelisk.errors import BadRequest
from obelisk.services.context import Services
from obelisk.services.modification import (
    Modification,
    parse_anonymize_request,
    parse_modify_request,
)

FIXTURE = json.loads(
    (Path(__file__).resolve().parents[2] / "fixtures/orthanc-jobs/orthanc-1.10.1.json").read_text()
)
STUDY = "64a773d7-f879e338-2af4417d-1d10b99c-69c0fb8a"
PATIENT = "dc3a2358-d3d6ff77-c0e3b3ed-ce1256f5-c8779d84"
UID_TAGS = {"0008,0018", "0020,000d", "0020,000e", "0020,0052", "0010,0020"}

Loaded = tuple[Services, TestClient]


def _tags(client: TestClient, study: str) -> list[dict[str, Any]]:
    instances = client.get(f"/studies/{study}/instances").json()
    tags = [client.get(f"/instances/{i['ID']}/tags?short").json() for i in instances]
    for found in tags:  # core.dicom_json renders DS values with repr() quotes (reported)
        for key, value in found.items():
            if isinstance(value, str):
                found[key] = value.replace("'", "")
    return sorted(tags, key=lambda t: t.get("0020,0013", ""))


def _compare(
    ours: list[dict[str, Any]],
    our_source: list[dict[str, Any]],
    theirs: list[dict[str, Any]],
    their_source: list[dict[str, Any]],
) -> None:
    """Same tags kept/removed/added, same tags changed, same new values (UIDs aside)."""
    assert len(ours) == len(theirs) == len(our_source) == len(their_source)
    for mine, my_original, orthanc, original in zip(
        ours, our_source, theirs, their_source, strict=True
    ):
        assert set(mine) == set(orthanc)
        for key, value in orthanc.items():
            changed = value != original.get(key)
            assert (mine[key] != my_original.get(key)) == changed, key
            if changed and key not in UID_TAGS:
                assert mine[key] == value, key
    for key in UID_TAGS & set(ours[0]):
        if key != "0008,0018":  # study/series/frame UIDs: one new value shared by the instances
            assert len({t[key] for t in ours}) == len({t[key] for t in our_source}), key


@pytest.mark.parametrize("name", ["modify", "anonymize", "anonymize-keep"])
def test_study_matches_orthanc(loaded: Loaded, name: str) -> None:
    _, client = loaded
    recorded = FIXTURE[name]
    our_source = _tags(client, STUDY)
    route = "modify" if name == "modify" else "anonymize"
    answer = client.post(f"/studies/{STUDY}/{route}", json=recorded["request"])
    assert answer.status_code == 200, answer.text
    content = answer.json()
    assert set(content) == set(recorded["content"])
    for key in ("Description", "FailedInstancesCount", "InstancesCount", "IsAnonymization", "Type"):
        assert content[key] == recorded["content"][key]
    ours = _tags(client, content["ID"])
    theirs = recorded["tags"]
    # the anonymized PatientName depends on a server-wide counter
    for tags in (*ours, *theirs):
        if name != "modify":
            assert tags["0010,0010"].startswith("Anonymized")
            tags["0010,0010"] = "Anonymized"
    _compare(ours, our_source, theirs, FIXTURE["source"])

    new_study = client.get(f"/studies/{content['ID']}").json()
    series = new_study["Series"][0]
    instance = client.get(f"/series/{series}").json()["Instances"][0]
    for level, public_id in (
        ("patients", new_study["ParentPatient"]),
        ("studies", content["ID"]),
        ("series", series),
        ("instances", instance),
    ):
        found = client.get(f"/{level}/{public_id}/metadata?expand").json()
        key = {"patients": "patient", "studies": "study", "series": "series"}.get(level, "instance")
        expected = recorded["metadata"][key]
        for field in ("ModifiedFrom", "AnonymizedFrom"):
            assert (field in found) == (field in expected), (level, field)
        if level != "instances":
            for field in ("ModifiedFrom", "AnonymizedFrom"):
                if field in expected:
                    assert found[field] == expected[field]
        else:
            assert found["Origin"] == "RestApi"


def test_archive_layout_matches_orthanc(loaded: Loaded) -> None:
    import zipfile

    _, client = loaded
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/patients/{PATIENT}/archive").content))
    assert [i.filename for i in archive.infolist()] == FIXTURE["archive"]
    media = zipfile.ZipFile(io.BytesIO(client.get(f"/patients/{PATIENT}/media").content))
    assert [i.filename for i in media.infolist()] == FIXTURE["media"]


def test_uids_are_consistent_and_reproducible() -> None:
    modification = parse_modify_request({}, Level.STUDY)
    again = Modification.from_json(json.loads(json.dumps(modification.to_json())))
    first = modification.map_identifier("1.2.3", Level.STUDY)
    assert first == again.map_identifier("1.2.3", Level.STUDY)  # resumed job: same UIDs
    assert first != modification.map_identifier("1.2.3", Level.SERIES)
    assert first != parse_modify_request({}, Level.STUDY).map_identifier("1.2.3", Level.STUDY)
    assert first.startswith("2.25.") and len(first) <= 64


@pytest.mark.parametrize(
    ("body", "level", "message"),
    [
        ({"Replace": {"StudyInstanceUID": "1.2"}}, Level.STUDY, "Force"),
        ({"Remove": ["PatientID"]}, Level.STUDY, "Force"),
        ({"Replace": {"PatientID": "X"}, "Force": True}, Level.STUDY, "PatientID"),
        ({}, Level.PATIENT, "PatientID is required"),
        ({"Replace": {"SeriesInstanceUID": "1.2"}, "Force": True}, Level.INSTANCE, "parent"),
    ],
)
def test_orthanc_sanity_checks(body: dict[str, Any], level: Level, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_modify_request(body, level)


def test_anonymization_options() -> None:
    default = parse_anonymize_request({}, "Anonymized7")
    assert default.replacements[0x00120063].endswith("2021b Table E.1-1 Basic Profile")
    assert default.replacements[0x00100010] == "Anonymized7"
    custom = parse_anonymize_request(
        {"Replace": {"PatientName": "X"}, "Keep": ["StationName"]}, "A"
    )
    assert 0x00120063 not in custom.replacements  # no longer Orthanc's own profile
    assert 0x00081010 not in custom.removals
    old = parse_anonymize_request({"DicomVersion": "2008"}, "A")
    assert old.replacements[0x00120063].endswith("PS 3.15-2008 Table E.1-1")
    with pytest.raises(Exception, match="Unknown DICOM version"):
        parse_anonymize_request({"DicomVersion": "1999"}, "A")


def test_instance_modify_returns_the_file_without_storing(loaded: Loaded) -> None:
    _, client = loaded
    instance = client.get(f"/studies/{STUDY}/instances").json()[0]["ID"]
    before = len(client.get("/instances").json())
    answer = client.post(
        f"/instances/{instance}/modify",
        json={"Replace": {"InstitutionName": "ELSEWHERE"}, "Transcode": "1.2.840.10008.1.2"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/dicom"
    ds = pydicom.dcmread(io.BytesIO(answer.content))
    assert ds.InstitutionName == "ELSEWHERE"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert (
        ds.SOPInstanceUID
        != client.get(f"/instances/{instance}").json()["MainDicomTags"]["SOPInstanceUID"]
    )
    assert len(client.get("/instances").json()) == before
    anonymized = client.post(f"/instances/{instance}/anonymize", json={})
    tags = shorten(full_tags(pydicom.dcmread(io.BytesIO(anonymized.content))))
    assert tags["0012,0062"] == "YES" and "0008,0080" not in tags


def test_keep_source_false_deletes_the_original(loaded: Loaded) -> None:
    _, client = loaded
    answer = client.post(
        f"/studies/{STUDY}/modify",
        json={"Replace": {"StudyDescription": "MOVED"}, "KeepSource": False},
    )
    assert answer.status_code == 200, answer.text
    assert client.get(f"/studies/{STUDY}").status_code == 404
    assert client.get(f"/studies/{answer.json()['ID']}").status_code == 200


def test_asynchronous_modification_and_errors(loaded: Loaded) -> None:
    _, client = loaded
    answer = client.post("/series/unknown/modify", json={})
    assert answer.status_code == 404
    forbidden = client.post(f"/studies/{STUDY}/modify", json={"Replace": {"PatientID": "X"}})
    assert forbidden.status_code == 400
    job = client.post(f"/studies/{STUDY}/anonymize", json={"Asynchronous": True}).json()
    assert set(job) == {"ID", "Path"}
    import time

    for _ in range(100):
        info = client.get(job["Path"]).json()
        if info["State"] in ("Success", "Failure"):
            break
        time.sleep(0.05)
    assert info["State"] == "Success" and info["Type"] == "ResourceModification"
    assert info["Content"]["IsAnonymization"] is True


def test_split_and_merge(loaded: Loaded) -> None:
    _, client = loaded
    source = "f76cd28b-541df57a-9fa45c7a-ff48b78d-66ad270f"  # MR + CT series
    series = client.get(f"/studies/{source}").json()["Series"]
    split = client.post(
        f"/studies/{source}/split",
        json={"Series": [series[0]], "Replace": {"StudyDescription": "SPLIT"}},
    )
    assert split.status_code == 200, split.text
    content = split.json()
    assert set(content) == {
        "Description", "FailedInstancesCount", "InstancesCount", "TargetStudy", "TargetStudyUID",
    }  # fmt: skip
    target = client.get(f"/studies/{content['TargetStudy']}").json()
    assert target["MainDicomTags"]["StudyDescription"] == "SPLIT"
    assert target["MainDicomTags"]["StudyInstanceUID"] == content["TargetStudyUID"]
    assert client.get(f"/series/{series[0]}").status_code == 404  # KeepSource defaults to false
    assert len(client.get(f"/studies/{source}").json()["Series"]) == 1

    merged = client.post(
        f"/studies/{STUDY}/merge", json={"Resources": [content["TargetStudy"]], "KeepSource": True}
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["TargetStudy"] == STUDY
    study = client.get(f"/studies/{STUDY}").json()
    assert len(study["Series"]) == 2
    assert client.get(f"/studies/{content['TargetStudy']}").status_code == 200
    bad = client.post(f"/studies/{STUDY}/split", json={"Series": [series[1]]})
    assert bad.status_code == 400
