"""STOW-RS: Part-10 parts stored through ingest; refused parts reported, not fatal."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from requests import HTTPError

from tests.integration.server_process import ObeliskProcess
from tests.support.synthetic import make_ct_instance, uid

STUDY = uid("stow", "study")
SERIES = uid("stow", "series")


def instance_bytes(n: int, study: str = STUDY) -> bytes:
    return make_ct_instance("STOW-1", "STOW^PATIENT", study, SERIES, uid("stow", n), n, 16, 16)


def multipart(parts: list[tuple[str, bytes]], boundary: str = "b0undary") -> bytes:
    body = b""
    for media_type, data in parts:
        body += f"--{boundary}\r\nContent-Type: {media_type}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObeliskProcess]:
    process = ObeliskProcess(Path(tmp_path_factory.mktemp("stow")))
    process.config["DicomWeb"] = {"Host": f"127.0.0.1:{process.http_port}"}
    process.start()
    yield process
    process.stop()


def test_store_with_dicomweb_client(server: ObeliskProcess) -> None:
    client = DICOMwebClient(f"{server.url}/dicom-web")
    datasets = [pydicom.dcmread(io.BytesIO(instance_bytes(n))) for n in (1, 2)]
    answer = client.store_instances(datasets)
    referenced = answer.ReferencedSOPSequence
    assert sorted(item.ReferencedSOPInstanceUID for item in referenced) == sorted(
        [uid("stow", 1), uid("stow", 2)]
    )
    assert referenced[0].RetrieveURL.startswith(f"{server.url}/dicom-web/studies/{STUDY}/series/")
    found = client.search_for_instances(STUDY)
    assert len(found) == 2
    stored = httpx.get(f"{server.url}/instances").json()
    assert len(stored) == 2
    origin = httpx.get(f"{server.url}/instances/{stored[0]}/metadata/Origin")
    assert origin.text == "Plugins"  # as Orthanc's DICOMweb plugin records it
    again = client.store_instances(datasets[:1])  # already stored: still a success
    assert len(again.ReferencedSOPSequence) == 1


def test_non_dicom_parts_are_reported_as_failures(server: ObeliskProcess) -> None:
    body = multipart(
        [
            ("application/dicom", instance_bytes(3)),
            ("application/dicom", b"this is not DICOM at all"),
            ("text/plain", b"hello"),
        ]
    )
    answer = httpx.post(
        f"{server.url}/dicom-web/studies",
        content=body,
        headers={
            "Content-Type": 'multipart/related; type="application/dicom"; boundary="b0undary"'
        },
    )
    assert answer.status_code == 202
    result = answer.json()
    assert result["00081199"]["Value"][0]["00081155"]["Value"] == [uid("stow", 3)]
    failures = result["00081198"]["Value"]
    assert [f["00081197"]["Value"] for f in failures] == [[0xC000], [0xC000]]


def test_nothing_stored_is_a_conflict(server: ObeliskProcess) -> None:
    body = multipart([("application/dicom", b"\x00" * 200)])
    answer = httpx.post(
        f"{server.url}/dicom-web/studies",
        content=body,
        headers={"Content-Type": "multipart/related; type=application/dicom; boundary=b0undary"},
    )
    assert answer.status_code == 409
    assert "00081198" in answer.json()


def test_study_in_the_url_must_match(server: ObeliskProcess) -> None:
    other = uid("stow", "other-study")
    body = multipart([("application/dicom", instance_bytes(4, study=other))])
    answer = httpx.post(
        f"{server.url}/dicom-web/studies/{STUDY}",
        content=body,
        headers={"Content-Type": "multipart/related; type=application/dicom; boundary=b0undary"},
    )
    assert answer.status_code == 409
    assert answer.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
    client = DICOMwebClient(f"{server.url}/dicom-web")
    stored = client.store_instances(
        [pydicom.dcmread(io.BytesIO(instance_bytes(5)))], study_instance_uid=STUDY
    )
    assert len(stored.ReferencedSOPSequence) == 1


def test_bad_content_types(server: ObeliskProcess) -> None:
    url = f"{server.url}/dicom-web/studies"
    plain = httpx.post(
        url, content=instance_bytes(6), headers={"Content-Type": "application/dicom"}
    )
    assert plain.status_code == 415
    json_parts = httpx.post(
        url,
        content=multipart([("application/dicom+json", b"[]")]),
        headers={
            "Content-Type": 'multipart/related; type="application/dicom+json"; boundary=b0undary'
        },
    )
    assert json_parts.status_code == 415
    with pytest.raises(HTTPError):
        DICOMwebClient(f"{server.url}/dicom-web/nowhere").store_instances(
            [pydicom.dcmread(io.BytesIO(instance_bytes(7)))]
        )
