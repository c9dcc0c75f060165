"""One Obelisk process per module, loaded with a few studies, for the DICOMweb conformance tests."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import RLELossless

from tests.integration.server_process import ObeliskProcess
from tests.support.synthetic import make_ct_instance, uid


@dataclass(frozen=True)
class Loaded:
    server: ObeliskProcess
    files: dict[str, bytes]  # SOP instance UID → uploaded bytes

    @property
    def root(self) -> str:
        return f"{self.server.url}/dicom-web"

    def client(self) -> DICOMwebClient:
        return DICOMwebClient(self.root)


STUDY = uid("dw", "study", 1)
SERIES = uid("dw", "series", 1)
STUDY_2 = uid("dw", "study", 2)
SERIES_2 = uid("dw", "series", 2)
RLE_SOP = uid("dw", "rle")
MULTIFRAME_SOP = uid("dw", "multiframe")


def instance(n: int) -> str:
    return uid("dw", "instance", n)


def build_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for n in range(1, 4):
        files[instance(n)] = make_ct_instance(
            "DW-1", "DOE^JOHN", STUDY, SERIES, instance(n), n, 32, 32,
            study_date="20200315", accession_number="ACC-1", study_description="CT CHEST",
        )  # fmt: skip
    files[instance(10)] = make_ct_instance(
        "DW-2", "MÜLLER^JÜRGEN", STUDY_2, SERIES_2, instance(10), 1, 32, 32,
        study_date="20210620", accession_number="ACC-2", modality="MR",
        study_description="MR HEAD",
    )  # fmt: skip
    rle = pydicom.dcmread(io.BytesIO(files[instance(1)]))
    rle.SOPInstanceUID = rle.file_meta.MediaStorageSOPInstanceUID = RLE_SOP
    rle.InstanceNumber = 50
    rle.compress(RLELossless, generate_instance_uid=False)
    files[RLE_SOP] = _save(rle)
    frames = pydicom.dcmread(io.BytesIO(files[instance(2)]))
    frames.SOPInstanceUID = frames.file_meta.MediaStorageSOPInstanceUID = MULTIFRAME_SOP
    frames.InstanceNumber = 60
    frames.NumberOfFrames = 3
    frames.PixelData = b"".join(bytes([k]) * 32 * 32 * 2 for k in (1, 2, 3))
    files[MULTIFRAME_SOP] = _save(frames)
    return files


def _save(ds: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    server = ObeliskProcess(tmp_path_factory.mktemp("dicomweb"))
    # dicomweb-client sends "Host: 127.0.0.1" without the port; DicomWeb.Host sets what goes
    # into RetrieveURL and BulkDataURI, as with Orthanc's plugin.
    server.config["DicomWeb"] = {"Host": f"127.0.0.1:{server.http_port}"}
    with server:
        files = build_files()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for data in files.values():
                http.post("/instances", content=data).raise_for_status()
        yield Loaded(server, files)
