"""Differential: the same anonymize/modify requests on Obelisk and on Orthanc 1.10.1 (skipped when
Orthanc is not installed) must keep, remove and regenerate the same tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.server_process import ObeliskProcess
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
