"""``/plugins``: the built-in DICOMweb server described as Orthanc describes its plugin."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.conftest import client_for


def test_dicomweb_is_listed_and_described(client: TestClient) -> None:
    assert client.get("/plugins").json() == ["explorer.js", "dicom-web"]
    described = client.get("/plugins/dicom-web").json()
    assert described["ID"] == "dicom-web" and described["Version"] == "1.7"
    assert set(described) >= {"Description", "ExtendsOrthancExplorer", "ID", "Version"}
    script = client.get("/plugins/explorer.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    unknown = client.get("/plugins/worklists")
    assert unknown.status_code == 404 and unknown.json()["OrthancStatus"] == 17


def test_disabled_dicomweb_is_not_listed() -> None:
    for client in client_for(DicomWeb={"Enable": False}):
        assert client.get("/plugins").json() == ["explorer.js"]
        assert client.get("/plugins/dicom-web").status_code == 404
