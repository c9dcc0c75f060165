"""Tags, raw content, metadata and attachments through the REST API, in process."""

from __future__ import annotations

import hashlib

import pytest
from starlette.testclient import TestClient

from obelisk.core.identifiers import ResourceIds
from tests.conftest import make_services
from tests.dicom_factory import make_dicom

IDS = ResourceIds.compute("P001", "1.2.3", "1.2.3.4", "1.2.3.4.5")


@pytest.fixture
def stored(client: TestClient) -> bytes:
    data = make_dicom()
    assert client.post("/instances", content=data).status_code == 200
    return data


def test_tags_in_three_forms(client: TestClient, stored: bytes) -> None:
    full = client.get(f"/instances/{IDS.instance}/tags").json()
    assert full["0010,0010"] == {"Name": "PatientName", "Type": "String", "Value": "DOE^JOHN"}
    assert full["7fe0,0010"] == {"Name": "PixelData", "Type": "Null", "Value": None}
    assert full["0028,0010"]["Value"] == "16"
    assert client.get(f"/instances/{IDS.instance}/tags?short").json()["0010,0020"] == "P001"
    simple = client.get(f"/instances/{IDS.instance}/tags?simplify").json()
    assert simple["PatientID"] == "P001" and simple["PixelData"] is None
    assert client.get(f"/instances/{IDS.instance}/simplified-tags").json() == simple


def test_header_is_the_meta_group(client: TestClient, stored: bytes) -> None:
    header = client.get(f"/instances/{IDS.instance}/header?simplify").json()
    assert header["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"
    assert all(
        key.startswith("0002,") for key in client.get(f"/instances/{IDS.instance}/header").json()
    )


def test_content_navigation(client: TestClient, stored: bytes) -> None:
    listing = client.get(f"/instances/{IDS.instance}/content").json()
    assert "0010-0010" in listing
    assert client.get(f"/instances/{IDS.instance}/content/0010-0010").text == "DOE^JOHN"
    assert client.get(f"/instances/{IDS.instance}/content/PatientID").text == "P001"
    assert client.get(f"/instances/{IDS.instance}/content/0011-0011").status_code == 404
    assert client.get(f"/instances/{IDS.instance}/frames").json() == [0]


def test_shared_tags_and_module(client: TestClient, stored: bytes) -> None:
    shared = client.get(f"/series/{IDS.series}/shared-tags?simplify").json()
    assert shared["PatientName"] == "DOE^JOHN"
    module = client.get(f"/patients/{IDS.patient}/module?simplify").json()
    assert module == {
        "PatientBirthDate": "19700101",
        "PatientID": "P001",
        "PatientName": "DOE^JOHN",
        "PatientSex": "M",
    }
    assert client.get(f"/studies/{IDS.study}/module-patient?simplify").json() == module


def test_builtin_metadata(client: TestClient, stored: bytes) -> None:
    names = client.get(f"/instances/{IDS.instance}/metadata").json()
    assert {"ReceptionDate", "Origin", "TransferSyntax", "SopClassUid", "RemoteIP"} <= set(names)
    values = client.get(f"/instances/{IDS.instance}/metadata?expand").json()
    assert values["Origin"] == "RestApi" and values["RemoteIP"] == "127.0.0.1"
    assert client.get(f"/instances/{IDS.instance}/metadata/IndexInSeries").text == "1"
    assert client.get(f"/series/{IDS.series}/metadata/LastUpdate").status_code == 200
    assert client.put(f"/instances/{IDS.instance}/metadata/Origin", content="x").status_code == 403


def test_user_metadata_round_trip() -> None:
    svc = make_services(UserMetadata={"Sample": 1024})
    from obelisk.http.app import create_app

    with TestClient(create_app(svc), client=("127.0.0.1", 1)) as client:
        client.post("/instances", content=make_dicom())
        url = f"/studies/{IDS.study}/metadata/Sample"
        assert client.put(url, content="hello").status_code == 200
        assert client.get(url).text == "hello"
        assert client.get(f"/studies/{IDS.study}/metadata/1024").text == "hello"
        assert client.delete(url).status_code == 200
        assert client.get(url).status_code == 404
        changes = [c["ChangeType"] for c in client.get("/changes").json()["Changes"]]
        assert "UpdatedMetadata" in changes
    svc.close()


def test_dicom_attachment(client: TestClient, stored: bytes) -> None:
    base = f"/instances/{IDS.instance}/attachments"
    assert client.get(base).json() == ["dicom"]
    info = client.get(f"{base}/dicom/info").json()
    md5 = hashlib.md5(stored).hexdigest()
    assert info["UncompressedMD5"] == md5 and info["UncompressedSize"] == len(stored)
    assert info["ContentType"] == 1
    assert client.get(f"{base}/dicom/md5").text == md5
    assert client.get(f"{base}/dicom/size").text == str(len(stored))
    assert client.get(f"{base}/dicom/data").content == stored
    assert client.get(f"{base}/dicom/is-compressed").text == "0"
    assert client.post(f"{base}/dicom/verify-md5").status_code == 200
    assert client.delete(f"{base}/dicom").status_code == 403


def test_user_attachments_with_compression() -> None:
    svc = make_services(UserContentType={"report": 1025}, StorageCompression=True)
    from obelisk.http.app import create_app

    with TestClient(create_app(svc), client=("127.0.0.1", 1)) as client:
        data = make_dicom()
        client.post("/instances", content=data)
        base = f"/studies/{IDS.study}/attachments"
        payload = b"report " * 1000
        assert client.put(f"{base}/report", content=payload).status_code == 200
        assert client.get(base).json() == ["report"]
        assert client.get(f"{base}/report/data").content == payload
        assert client.get(f"{base}/report/is-compressed").text == "1"
        assert int(client.get(f"{base}/report/compressed-size").text) < len(payload)
        assert client.post(f"{base}/report/verify-md5").status_code == 200
        assert client.delete(f"{base}/report").status_code == 200
        assert client.get(f"{base}/report/data").status_code == 404
        # the DICOM file is compressed on disk and given back byte for byte
        assert client.get(f"/instances/{IDS.instance}/file").content == data
    svc.close()
