"""Differential: the same anonymize/modify requests on Obelisk and on Orthanc 1.10.1 (skipped when
Orthanc is not installed) must keep, remove and regenerate the same tags; paths into sequences and
``/tools/bulk-modify|bulk-anonymize`` must give the same items and the same outputs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from tests.integration.server_process import ObeliskProcess
from tests.support.fixtures import with_references
from tests.support.orthanc import orthanc_available, running_orthanc

INPUTS = Path(__file__).resolve().parents[1] / "fixtures" / "orthanc" / "inputs"
STUDY = "64a773d7-f879e338-2af4417d-1d10b99c-69c0fb8a"
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("anonymize", {}),
    ("anonymize", {"Keep": ["StudyDescription", "SeriesDescription"], "KeepPrivateTags": True}),
    ("modify", {"Replace": {"StudyDescription": "X", "InstitutionName": "Y"}, "Remove": ["KVP"]}),
    ("modify", {"Replace": {"StudyInstanceUID": "1.2.3"}, "Force": True}),
]


def _first(instances: list[dict[str, Any]]) -> str:
    """The instance with the lowest InstanceNumber (list orders differ between servers)."""
    found = min(instances, key=lambda i: int(i["MainDicomTags"].get("InstanceNumber", "0")))
    return str(found["ID"])


def _run(url: str) -> list[dict[str, Any]]:
    results = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for path in sorted(INPUTS.glob("*.dcm")):
            client.post("/instances", content=path.read_bytes()).raise_for_status()
        source = _first(client.get(f"/studies/{STUDY}/instances").json())
        original = client.get(f"/instances/{source}/simplified-tags").json()
        for route, body in REQUESTS:
            content = client.post(f"/studies/{STUDY}/{route}", json=body).json()
            instances = client.get(f"/studies/{content['ID']}/instances").json()
            tags = client.get(f"/instances/{_first(instances)}/simplified-tags").json()
            metadata = client.get(f"/studies/{content['ID']}/metadata?expand").json()
            results.append(
                {
                    "keys": sorted(tags),
                    "changed": sorted(
                        k for k, v in tags.items() if original.get(k) != v and k != "PatientName"
                    ),
                    "metadata": sorted(k for k in metadata if k != "LastUpdate"),
                    "content": sorted(content),
                }
            )
    return results


@pytest.mark.orthanc
@pytest.mark.skipif(not orthanc_available(), reason="Orthanc 1.10.1 is not installed")
def test_same_results_as_orthanc(obelisk: ObeliskProcess, tmp_path: Path) -> None:
    ours = _run(obelisk.url)
    with running_orthanc(tmp_path / "orthanc") as orthanc:
        theirs = _run(orthanc.url)
    for mine, orthanc_result, request in zip(ours, theirs, REQUESTS, strict=True):
        assert mine == orthanc_result, request


def _with_references() -> bytes:
    """An input file with a two-item ReferencedImageSequence (and its own SOPInstanceUID)."""
    ds = with_references()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.2.999"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


PATH_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("modify", {
        "Replace": {
            "ReferencedImageSequence[1].ReferencedSOPInstanceUID": "9.9",
            "(0008,1140)[*].(0008,1150)": "1.2.840.10008.5.1.4.1.1.2",
            "ReferencedImageSequence[0].ReferencedSegmentNumber": "3",
            "ReferencedImageSequence[5].ReferencedSOPInstanceUID": "no such item",
        },
        "Remove": ["00081140[*].ReferencedFrameNumber"],
    }),
    ("modify", {"Replace": {"ReferencedImageSequence[0].SOPInstanceUID": "1.2"}}),  # no Force
    ("anonymize", {"Keep": ["ReferencedImageSequence[0].ReferencedSOPInstanceUID"]}),
    ("modify", {"Remove": ["ReferencedImageSequence.ReferencedSOPInstanceUID"]}),  # 400
]  # fmt: skip


def _items(answer: httpx.Response) -> Any:
    """The sequence items (new UIDs shown as "new"), or the error status."""
    if answer.status_code != 200:
        return [answer.status_code, answer.json()["OrthancStatus"]]
    ds = pydicom.dcmread(io.BytesIO(answer.content))
    originals = {"1.2.3.0", "1.2.3.1", "9.9", "1.2.840.10008.5.1.4.1.1.4"}
    return [
        {
            e.keyword: (str(e.value) if str(e.value) in originals or e.VR != "UI" else "new")
            for e in item
        }
        for item in ds.get("ReferencedImageSequence", [])
    ]


def _paths_and_bulk(url: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=60) as client:
        for path in sorted(INPUTS.glob("*.dcm")):
            client.post("/instances", content=path.read_bytes()).raise_for_status()
        instance = client.post("/instances", content=_with_references()).json()["ID"]
        paths = [
            _items(client.post(f"/instances/{instance}/{route}", json=body))
            for route, body in PATH_REQUESTS
        ]
        series = sorted(client.get(f"/studies/{STUDY}").json()["Series"])
        body = {"Resources": series, "Replace": {"InstitutionName": "B"}}
        bulk = client.post("/tools/bulk-modify", json=body)
        resources = bulk.json()["Resources"]
        anonymized = client.post("/tools/bulk-anonymize", json={"Resources": [STUDY]}).json()
        bad = client.post("/tools/bulk-modify", json={"Resources": "x"})
        return {
            "paths": paths,
            "bulk_keys": sorted(bulk.json()),
            "bulk_types": [r["Type"] for r in resources],
            # Instance level: only SOPInstanceUID changes, so the parents keep their (same) IDs
            "bulk_parents": [r["ID"] for r in resources if r["Type"] != "Instance"],
            "anonymized_keys": sorted(anonymized),
            "anonymized_types": [r["Type"] for r in anonymized["Resources"]],
            "bad": [bad.status_code, bad.json()["OrthancStatus"]],
        }


@pytest.mark.orthanc
@pytest.mark.skipif(not orthanc_available(), reason="Orthanc 1.10.1 is not installed")
def test_paths_and_bulk_as_orthanc(obelisk: ObeliskProcess, tmp_path: Path) -> None:
    ours = _paths_and_bulk(obelisk.url)
    with running_orthanc(tmp_path / "orthanc") as orthanc:
        theirs = _paths_and_bulk(orthanc.url)
    assert ours == theirs
