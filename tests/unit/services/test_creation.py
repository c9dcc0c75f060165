"""``/tools/create-dicom`` and ``/instances/{id}/pdf``."""

from __future__ import annotations

import base64
import io

import pydicom
import pytest
from starlette.testclient import TestClient

from obelisk.services.context import Services

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
SERIES = "e8629fdc-c2daedcd-bfeec4c7-0949d14d-2858a96f"  # P001 / ACC0001 / CT
Loaded = tuple[Services, TestClient]


def _file(client: TestClient, instance: str) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(client.get(f"/instances/{instance}/file").content))


def test_pdf_round_trip(loaded: Loaded) -> None:
    _, client = loaded
    uri = "data:application/pdf;base64," + base64.b64encode(PDF + b"x").decode()
    answer = client.post(
        "/tools/create-dicom",
        json={"Tags": {"PatientName": "PDF^TEST", "PatientID": "PDF1"}, "Content": uri},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"ID", "ParentPatient", "ParentSeries", "ParentStudy", "Path", "Status"}
    assert body["Status"] == "Success"
    ds = _file(client, body["ID"])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    pdf = client.get(f"/instances/{body['ID']}/pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == PDF + b"x"
    metadata = client.get(f"/instances/{body['ID']}/metadata?expand").json()
    assert metadata["Origin"] == "RestApi"
    other = client.get(f"/studies/{client.get('/studies').json()[0]}/instances").json()[0]["ID"]
    assert client.get(f"/instances/{other}/pdf").status_code == 404


def test_private_tags_from_the_dictionary(loaded: Loaded) -> None:
    _, client = loaded
    answer = client.post(
        "/tools/create-dicom",
        json={
            "Tags": {"PatientName": "PRIV", "0011,1010": "hello", "StudyDescription": "Étude"},
            "PrivateCreator": "OBELISK TEST",
        },
    )
    assert answer.status_code == 200, answer.text
    ds = _file(client, answer.json()["ID"])
    assert ds[0x00111010].value == "hello" and ds[0x00111010].VR == "LO"
    assert ds[0x00110010].value == "OBELISK TEST"  # Orthanc 1.10.1 forgets the creator
    assert ds.StudyDescription == "Étude"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66"  # Raw Data: no payload
    by_name = client.post("/tools/create-dicom", json={"Tags": {"MyPrivate": "named"}})
    assert _file(client, by_name.json()["ID"])[0x00111010].value == "named"


def test_parent_series(loaded: Loaded) -> None:
    _, client = loaded
    answer = client.post(
        "/tools/create-dicom", json={"Parent": SERIES, "Tags": {"InstanceNumber": "99"}}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["ParentSeries"] == SERIES
    override = client.post(
        "/tools/create-dicom", json={"Parent": SERIES, "Tags": {"AccessionNumber": "X"}}
    )
    assert override.status_code == 400
    assert override.json()["OrthancStatus"] == 2020
    assert "AccessionNumber" in override.json()["Details"]
    unknown = client.post("/tools/create-dicom", json={"Parent": "nope", "Tags": {}})
    assert unknown.json()["OrthancStatus"] == 2024
    instance = client.get(f"/series/{SERIES}").json()["Instances"][0]
    wrong = client.post("/tools/create-dicom", json={"Parent": instance, "Tags": {}})
    assert wrong.json()["OrthancStatus"] == 2025


def test_identifiers_need_force(loaded: Loaded) -> None:
    _, client = loaded
    tags = {"SOPInstanceUID": "1.2.3.4.5.6.7"}
    assert client.post("/tools/create-dicom", json={"Tags": tags}).status_code == 400
    forced = client.post("/tools/create-dicom", json={"Tags": tags, "Force": True})
    assert forced.status_code == 200
    assert _file(client, forced.json()["ID"]).SOPInstanceUID == "1.2.3.4.5.6.7"
    bad = client.post("/tools/create-dicom", json={"Tags": {}, "Content": "not a data uri"})
    assert bad.json()["OrthancStatus"] == 2023


def test_png_image(loaded: Loaded) -> None:
    image_module = pytest.importorskip("PIL.Image")
    _, client = loaded
    buffer = io.BytesIO()
    image_module.new("RGB", (4, 3), (10, 20, 30)).save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    answer = client.post("/tools/create-dicom", json={"Tags": {}, "Content": uri})
    assert answer.status_code == 200, answer.text
    ds = _file(client, answer.json()["ID"])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel) == (3, 4, 3)
    assert ds.PixelData[:3] == bytes([10, 20, 30])
