"""The DICOMweb routes in process: configuration of the roots, and answers over memory storage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from obelisk.http.app import create_app
from tests.conftest import make_services
from tests.dicom_factory import make_dicom, make_series


def client_with(**overrides: Any) -> Iterator[TestClient]:
    services = make_services(**overrides)
    with TestClient(create_app(services), client=("127.0.0.1", 50000)) as client:
        yield client
    services.close()


@pytest.fixture
def custom_root() -> Iterator[TestClient]:
    yield from client_with(DicomWeb={"Root": "/dw/", "WadoRoot": "/legacy", "Host": "pacs:9"})


def test_roots_and_host_come_from_the_configuration(custom_root: TestClient) -> None:
    custom_root.post("/instances", content=make_dicom())
    assert custom_root.get("/dicom-web/studies").status_code == 404
    [study] = custom_root.get("/dw/studies").json()
    assert study["00081190"]["Value"] == ["http://pacs:9/dw/studies/1.2.3"]
    legacy = "/legacy?requestType=WADO&objectUID=1.2.3.4.5&contentType=application/dicom"
    assert custom_root.get(legacy).content == make_dicom()


def test_dicomweb_can_be_disabled() -> None:
    for client in client_with(DicomWeb={"Enable": False, "EnableWado": False}):
        assert client.get("/dicom-web/studies").status_code == 404
        assert client.get("/wado?requestType=WADO&objectUID=1").status_code == 404


def test_bad_option_types_are_refused() -> None:
    from obelisk.config import load_settings
    from obelisk.dicomweb.options import DicomWebOptions
    from obelisk.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        DicomWebOptions.from_settings(load_settings(None, {"DicomWeb": {"Enable": "yes"}}))


def test_case_sensitive_qido_when_asked() -> None:
    for client in client_with(DicomWeb={"QidoCaseSensitive": True}):
        client.post("/instances", content=make_dicom())
        assert client.get("/dicom-web/studies?PatientName=doe*").json() == []
        assert len(client.get("/dicom-web/studies?PatientName=DOE*").json()) == 1


def test_metadata_and_frames_in_process(client: TestClient) -> None:
    for data in make_series(2):
        client.post("/instances", content=data)
    metadata = client.get("/dicom-web/studies/1.2.3/metadata")
    assert metadata.headers["content-type"] == "application/dicom+json"
    assert len(metadata.json()) == 2
    frame = client.get(
        "/dicom-web/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.2/frames/1",
        headers={"Accept": "application/octet-stream"},
    )
    assert frame.headers["content-type"] == (
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    )
    assert len(frame.content) == 16 * 16
    bad = client.get("/dicom-web/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.2/frames/x")
    assert bad.status_code == 400
