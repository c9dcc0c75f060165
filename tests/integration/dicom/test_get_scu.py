"""``POST /modalities/{id}/get`` (Orthanc 1.11's C-GET SCU) between two real servers.

``SOURCE`` is a second Obelisk server holding the instances; it knows the first one (AET
``OBELISK``) as a modality, so it serves its C-GET. The first one stores what it receives.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.filereader import read_preamble

from tests.integration.dicom.conftest import AET
from tests.integration.server_process import ObeliskProcess, free_port


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ObeliskProcess, ObeliskProcess]]:
    """(the server under test, the C-GET peer ``SOURCE``)."""
    local_dir, source_dir = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("source")
    local = ObeliskProcess(local_dir, {"DicomAet": AET})
    source = ObeliskProcess(source_dir, {"DicomAet": "SOURCE"})
    local.config["DicomModalities"] = {
        "source": ["SOURCE", "127.0.0.1", source.config["DicomPort"]],
        "nobody": ["NOBODY", "127.0.0.1", free_port()],  # nothing listens there
    }
    source.config["DicomModalities"] = {"obelisk": [AET, "127.0.0.1", local.config["DicomPort"]]}
    source.start()
    try:
        local.start()
    except Exception:
        source.stop()
        raise
    yield local, source
    local.stop()
    source.stop()


def _dataset_bytes(data: bytes) -> bytes:
    """A Part-10 file without its preamble and file meta (rebuilt on every C-STORE)."""
    stream = io.BytesIO(data)
    read_preamble(stream, False)
    pydicom.filereader._read_file_meta_info(stream)
    return stream.read()


def _upload(server: ObeliskProcess, files: list[Path]) -> list[dict[str, Any]]:
    return [httpx.post(f"{server.url}/instances", content=f.read_bytes()).json() for f in files]


def _wait_job(server: ObeliskProcess, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = httpx.get(f"{server.url}/jobs/{job_id}").json()
        if job["State"] in ("Success", "Failure"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_get_study_stores_the_instances_unchanged(
    servers: tuple[ObeliskProcess, ObeliskProcess], dicom_files: list[Path]
) -> None:
    local, source = servers
    uploaded = _upload(source, dicom_files[:3])
    study_uid = pydicom.dcmread(dicom_files[0]).StudyInstanceUID
    assert "get" in httpx.get(f"{local.url}/modalities/source").json()
    answer = httpx.post(
        f"{local.url}/modalities/source/get",
        json={"Level": "Study", "Resources": [{"StudyInstanceUID": study_uid}]},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "Description": "REST API",
        "LocalAet": AET,
        "Query": [{"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study_uid}],
        "RemoteAet": "SOURCE",
    }
    for instance in uploaded:
        public_id = instance["ID"]
        received = httpx.get(f"{local.url}/instances/{public_id}/file")
        assert received.status_code == 200
        sent = httpx.get(f"{source.url}/instances/{public_id}/file").content
        assert _dataset_bytes(received.content) == _dataset_bytes(sent)
        metadata = httpx.get(f"{local.url}/instances/{public_id}/metadata?expand").json()
        assert metadata["Origin"] == "DicomProtocol"
        assert metadata["RemoteAET"] == "SOURCE" and metadata["CalledAET"] == AET


def test_get_series_as_an_asynchronous_job(
    servers: tuple[ObeliskProcess, ObeliskProcess], dicom_files: list[Path]
) -> None:
    local, source = servers
    uploaded = _upload(source, dicom_files[3:6])
    series_uid = pydicom.dcmread(dicom_files[3]).SeriesInstanceUID
    study_uid = pydicom.dcmread(dicom_files[3]).StudyInstanceUID
    resource = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid}
    started = httpx.post(
        f"{local.url}/modalities/source/get",
        json={"Level": "Series", "Resources": [resource], "Asynchronous": True, "Priority": 3},
    ).json()
    assert started["Path"] == f"/jobs/{started['ID']}"
    job = _wait_job(local, started["ID"])
    assert job["State"] == "Success" and job["Type"] == "DicomGetScu"
    assert job["Priority"] == 3
    assert job["Content"]["Query"] == [{**resource, "QueryRetrieveLevel": "SERIES"}]
    for instance in uploaded:
        assert httpx.get(f"{local.url}/instances/{instance['ID']}").status_code == 200


def test_unknown_modality_and_bad_bodies(servers: tuple[ObeliskProcess, ObeliskProcess]) -> None:
    local, _ = servers
    body = {"Level": "Study", "Resources": [{"StudyInstanceUID": "1.2.3"}]}
    assert httpx.post(f"{local.url}/modalities/nope/get", json=body).status_code == 404
    for bad in ({"Resources": []}, {"Level": "Study", "Resources": "1.2.3"}):
        answer = httpx.post(f"{local.url}/modalities/source/get", json=bad)
        assert answer.status_code == 400, bad
    assert httpx.post(f"{local.url}/modalities/source/get", content=b"{").status_code == 400


def test_refused_association_fails_the_job(
    servers: tuple[ObeliskProcess, ObeliskProcess],
) -> None:
    local, _ = servers
    body = {"Level": "Study", "Resources": [{"StudyInstanceUID": "1.2.3"}], "Timeout": 3}
    failed = httpx.post(f"{local.url}/modalities/nobody/get", json=body, timeout=60)
    assert failed.status_code == 500 and failed.json()["OrthancStatus"] == 9
    started = httpx.post(
        f"{local.url}/modalities/nobody/get", json={**body, "Asynchronous": True}
    ).json()
    job = _wait_job(local, started["ID"])
    assert job["State"] == "Failure" and job["ErrorCode"] == 9
    assert "NOBODY" in job["ErrorDetails"]


def test_c_get_refused_by_the_peer_fails_the_job(
    servers: tuple[ObeliskProcess, ObeliskProcess],
) -> None:
    """The source serves C-GET to known modalities only (``DicomAlwaysAllowGet`` is false)."""
    local, _ = servers
    body = {
        "Level": "Study",
        "Resources": [{"StudyInstanceUID": "1.2.3"}],
        "LocalAet": "STRANGER",
        "Asynchronous": True,
    }
    started = httpx.post(f"{local.url}/modalities/source/get", json=body).json()
    job = _wait_job(local, started["ID"])
    assert job["State"] == "Failure" and job["ErrorCode"] == 9
    assert "C-GET" in job["ErrorDetails"] and "SOURCE" in job["ErrorDetails"]
