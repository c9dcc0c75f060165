"""``/tools/create-dicom`` with a PDF and private tags, on the real server."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import httpx
import pydicom

from tests.integration.server_process import ObeliskProcess

PDF = b"%PDF-1.4\n%%EOF\n"


def test_create_pdf_and_private_tags(obelisk_factory: Callable[..., ObeliskProcess]) -> None:
    config = {"Dictionary": {"0011,1010": ["LO", "MyPrivate", 1, 1, "OBELISK TEST"]}}
    with obelisk_factory(config) as server, httpx.Client(base_url=server.url) as client:
        uri = "data:application/pdf;base64," + base64.b64encode(PDF).decode()
        created = client.post(
            "/tools/create-dicom",
            json={"Tags": {"PatientID": "PDF1", "MyPrivate": "hello"}, "Content": uri},
        ).json()
        assert created["Status"] == "Success"
        assert client.get(f"/instances/{created['ID']}/pdf").content == PDF
        ds = pydicom.dcmread(io.BytesIO(client.get(f"{created['Path']}/file").content))
        assert ds[0x00111010].value == "hello"
        assert ds[0x00110010].value == "OBELISK TEST"
