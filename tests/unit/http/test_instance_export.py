"""``POST /instances/{id}/export``: the DICOM file written on the server's disk, only when
``RestApiWriteToFileSystemEnabled`` allows it (answers and statuses as Orthanc 1.10.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import client_for
from tests.dicom_factory import make_dicom


@pytest.fixture
def writing_client() -> Iterator[TestClient]:
    yield from client_for(RestApiWriteToFileSystemEnabled=True)


def test_export_is_forbidden_by_default(client: TestClient, tmp_path: Path) -> None:
    stored = client.post("/instances", content=make_dicom()).json()
    target = tmp_path / "out.dcm"

    answer = client.post(f"/instances/{stored['ID']}/export", content=str(target).encode())

    assert answer.status_code == 403
    assert "RestApiWriteToFileSystemEnabled" in answer.json()["Details"]
    assert not target.exists()


def test_export_writes_the_stored_bytes(writing_client: TestClient, tmp_path: Path) -> None:
    data = make_dicom()
    stored = writing_client.post("/instances", content=data).json()
    target = tmp_path / "out.dcm"

    answer = writing_client.post(f"/instances/{stored['ID']}/export", content=str(target).encode())

    assert answer.status_code == 200 and answer.json() == {}
    assert target.read_bytes() == data


def test_export_errors(writing_client: TestClient, tmp_path: Path) -> None:
    stored = writing_client.post("/instances", content=make_dicom()).json()
    url = f"/instances/{stored['ID']}/export"

    unwritable = writing_client.post(url, content=str(tmp_path / "missing" / "x.dcm").encode())
    assert unwritable.status_code == 500 and unwritable.json()["OrthancStatus"] == 14
    # Orthanc answers 500 "Cannot write to file" for an empty path too; a 400 says why.
    assert writing_client.post(url, content=b"").status_code == 400
    unknown = writing_client.post("/instances/nope/export", content=str(tmp_path / "x").encode())
    assert unknown.status_code == 404 and unknown.json()["OrthancStatus"] == 17
