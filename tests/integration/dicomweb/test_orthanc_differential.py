"""The same DICOMweb requests to Obelisk and to Orthanc 1.10.1 + its DICOMweb plugin (1.7)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.dicomweb.conftest import (
    RLE_SOP,
    SERIES,
    STUDY,
    Loaded,
    instance,
)
from tests.support.orthanc import orthanc_available, running_orthanc

pytestmark = [
    pytest.mark.orthanc,
    pytest.mark.skipif(not orthanc_available(), reason="Orthanc 1.10.1 is not installed"),
]
#: Known, documented differences (docs/dicomweb.md): charset, InstanceAvailability, the host.
IGNORED = {"00080005", "00080056", "00081190"}


@pytest.fixture(scope="module")
def orthanc_root(loaded: Loaded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_orthanc(Path(tmp_path_factory.mktemp("orthanc")), with_dicomweb=True) as orthanc:
        with httpx.Client(base_url=orthanc.url, timeout=30) as http:
            for data in loaded.files.values():
                http.post("/instances", content=data).raise_for_status()
        yield f"{orthanc.url}/dicom-web"


def both(loaded: Loaded, orthanc_root: str, path: str, accept: str) -> tuple[Any, Any]:
    headers = {"Accept": accept}
    ours = httpx.get(f"{loaded.root}{path}", headers=headers)
    theirs = httpx.get(f"{orthanc_root}{path}", headers=headers)
    assert ours.status_code == theirs.status_code == 200, path
    return ours, theirs


def comparable(item: dict[str, Any], base: str) -> dict[str, Any]:
    kept = {k: v for k, v in item.items() if k not in IGNORED}
    if "7FE00010" in kept:  # the host differs; the path must not
        kept["7FE00010"] = dict(
            kept["7FE00010"], BulkDataURI=kept["7FE00010"]["BulkDataURI"][len(base) :]
        )
    return kept


@pytest.mark.parametrize(
    "query",
    [
        "/studies?PatientName=DOE*",
        "/studies?StudyDate=20210101-&includefield=00081030",
        f"/studies/{STUDY}/series",
        f"/studies/{STUDY}/series/{SERIES}/instances?InstanceNumber=2",
        "/series?Modality=MR",
    ],
)
def test_qido_answers_match(loaded: Loaded, orthanc_root: str, query: str) -> None:
    ours, theirs = both(loaded, orthanc_root, query, "application/dicom+json")
    assert [comparable(i, "") for i in ours.json()] == [comparable(i, "") for i in theirs.json()]


def test_metadata_matches(loaded: Loaded, orthanc_root: str) -> None:
    path = f"/studies/{STUDY}/series/{SERIES}/instances/{instance(1)}/metadata"
    ours, theirs = both(loaded, orthanc_root, path, "application/dicom+json")
    [mine], [reference] = ours.json(), theirs.json()
    assert comparable(mine, loaded.root) == comparable(reference, orthanc_root)


@pytest.mark.parametrize("sop", [instance(1), RLE_SOP])
def test_frames_as_stored_match(loaded: Loaded, orthanc_root: str, sop: str) -> None:
    path = f"/studies/{STUDY}/series/{SERIES}/instances/{sop}/frames/1"
    accept = "multipart/related; type=application/octet-stream; transfer-syntax=*"
    ours, theirs = both(loaded, orthanc_root, path, accept)
    # Orthanc 1.7 names RLE frames image/dicom-rle; both state the same transfer syntax
    assert transfer_syntax(ours) == transfer_syntax(theirs)
    assert frame_of(ours.content) == frame_of(theirs.content)


def transfer_syntax(answer: httpx.Response) -> str:
    return answer.headers["content-type"].split("transfer-syntax=")[1].split('"')[0]


def frame_of(body: bytes) -> bytes:
    """The data of the first part (its Content-Length tells where it ends)."""
    head, _, rest = body.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return rest[:length]
