"""WADO-RS (instances, metadata, frames, bulk data) and WADO-URI against the running server."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pydicom
import pytest
from requests import HTTPError

from tests.integration.dicomweb.conftest import (
    MULTIFRAME_SOP,
    RLE_SOP,
    SERIES,
    STUDY,
    STUDY_2,
    Loaded,
    instance,
)

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"
RLE = "1.2.840.10008.1.2.5"


def sop_uids(datasets: list[pydicom.Dataset]) -> list[str]:
    return sorted(str(ds.SOPInstanceUID) for ds in datasets)


def test_retrieve_study_series_and_instance(loaded: Loaded) -> None:
    client = loaded.client()
    study = client.retrieve_study(STUDY)
    assert sop_uids(study) == sorted(
        [instance(1), instance(2), instance(3), RLE_SOP, MULTIFRAME_SOP]
    )
    assert sop_uids(client.retrieve_series(STUDY, SERIES)) == sop_uids(study)
    single = client.retrieve_instance(STUDY, SERIES, instance(1))
    assert single.PatientName == "DOE^JOHN"
    as_uploaded = pydicom.dcmread(io.BytesIO(loaded.files[instance(1)]))
    assert single.PixelData == as_uploaded.PixelData


def test_retrieve_answers_multipart_as_stored(loaded: Loaded) -> None:
    url = f"{loaded.root}/studies/{STUDY}/series/{SERIES}/instances/{RLE_SOP}"
    answer = httpx.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    assert answer.content.startswith(b"--")
    assert loaded.files[RLE_SOP] in answer.content  # the stored bytes, untouched


def test_transfer_syntax_negotiation(loaded: Loaded) -> None:
    client = loaded.client()
    stored = client.retrieve_instance(
        STUDY, SERIES, RLE_SOP, media_types=(("application/dicom", "*"),)
    )
    assert stored.file_meta.TransferSyntaxUID == RLE
    decoded = client.retrieve_instance(
        STUDY, SERIES, RLE_SOP, media_types=(("application/dicom", EXPLICIT),)
    )
    assert decoded.file_meta.TransferSyntaxUID == EXPLICIT
    original = pydicom.dcmread(io.BytesIO(loaded.files[instance(1)]))
    assert np.array_equal(decoded.pixel_array, original.pixel_array)
    implicit = httpx.get(  # dicomweb-client refuses to ask for implicit VR
        f"{loaded.root}/studies/{STUDY}/series/{SERIES}/instances/{instance(2)}",
        headers={
            "Accept": f"multipart/related; type=application/dicom; transfer-syntax={IMPLICIT}"
        },
    )
    part = implicit.content.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
    assert pydicom.dcmread(io.BytesIO(part)).file_meta.TransferSyntaxUID == IMPLICIT
    compressed = client.retrieve_instance(
        STUDY, SERIES, instance(3), media_types=(("application/dicom", RLE),)
    )
    assert compressed.file_meta.TransferSyntaxUID == RLE
    url = f"{loaded.root}/studies/{STUDY}/series/{SERIES}/instances/{instance(3)}"
    refused = httpx.get(
        url,
        headers={
            "Accept": 'multipart/related; type="application/dicom"; '
            "transfer-syntax=1.2.840.10008.1.2.4.100"
        },
    )
    assert refused.status_code == 406


def test_metadata_at_every_level(loaded: Loaded) -> None:
    client = loaded.client()
    study = client.retrieve_study_metadata(STUDY)
    assert len(study) == 5
    series = client.retrieve_series_metadata(STUDY, SERIES)
    assert sorted(m["00080018"]["Value"][0] for m in series) == sorted(
        m["00080018"]["Value"][0] for m in study
    )
    one = client.retrieve_instance_metadata(STUDY, SERIES, instance(1))
    assert one["00280010"] == {"vr": "US", "Value": [32]}
    assert one["00280030"]["vr"] == "DS"
    assert one["00100010"]["Value"] == [{"Alphabetic": "DOE^JOHN"}]
    pixel = one["7FE00010"]
    assert pixel["vr"] == "OW"
    assert pixel["BulkDataURI"] == (
        f"{loaded.root}/studies/{STUDY}/series/{SERIES}/instances/{instance(1)}/bulk/7fe00010"
    )
    other = client.retrieve_study_metadata(STUDY_2)[0]
    assert other["00100010"]["Value"] == [{"Alphabetic": "MÜLLER^JÜRGEN"}]


def test_bulk_data(loaded: Loaded) -> None:
    client = loaded.client()
    uri = client.retrieve_instance_metadata(STUDY, SERIES, instance(1))["7FE00010"]["BulkDataURI"]
    [data] = client.retrieve_bulkdata(uri)
    assert data == pydicom.dcmread(io.BytesIO(loaded.files[instance(1)])).PixelData
    single = httpx.get(uri, headers={"Accept": "application/octet-stream"})
    assert single.headers["content-type"] == "application/octet-stream"
    assert single.content == data
    upper = httpx.get(uri.replace("7fe00010", "7FE00010"), headers={"Accept": "*/*"})
    assert data in upper.content
    missing = httpx.get(uri.replace("7fe00010", "00091099"))
    assert missing.status_code == 404


def test_uncompressed_frames(loaded: Loaded) -> None:
    client = loaded.client()
    original = pydicom.dcmread(io.BytesIO(loaded.files[instance(1)]))
    [frame] = client.retrieve_instance_frames(STUDY, SERIES, instance(1), [1])
    assert frame == original.PixelData
    frames = client.retrieve_instance_frames(STUDY, SERIES, MULTIFRAME_SOP, [3, 1])
    assert frames == [b"\x03" * 2048, b"\x01" * 2048]
    with pytest.raises(HTTPError):
        client.retrieve_instance_frames(STUDY, SERIES, MULTIFRAME_SOP, [4])


def test_compressed_frames_as_stored_or_decoded(loaded: Loaded) -> None:
    client = loaded.client()
    original = pydicom.dcmread(io.BytesIO(loaded.files[instance(1)]))
    [decoded] = client.retrieve_instance_frames(
        STUDY, SERIES, RLE_SOP, [1], media_types=(("application/octet-stream", EXPLICIT),)
    )
    assert decoded == original.PixelData
    url = f"{loaded.root}/studies/{STUDY}/series/{SERIES}/instances/{RLE_SOP}/frames/1"
    as_stored = httpx.get(
        url,
        headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
    )
    assert as_stored.status_code == 200
    assert f"transfer-syntax={RLE}".encode() in as_stored.content[:300]
    stored = pydicom.dcmread(io.BytesIO(loaded.files[RLE_SOP]))
    assert pydicom.encaps.get_frame(stored.PixelData, 0, number_of_frames=1) in as_stored.content
    anything = httpx.get(url, headers={"Accept": 'multipart/related; type="*/*"'})
    assert anything.status_code == 200
    rle = httpx.get(url, headers={"Accept": 'multipart/related; type="image/x-dicom-rle"'})
    assert b"Content-Type: image/x-dicom-rle" in rle.content[:300]
    refused = httpx.get(url, headers={"Accept": 'multipart/related; type="image/jp2"'})
    assert refused.status_code == 406


def test_wado_uri(loaded: Loaded) -> None:
    base = f"{loaded.server.url}/wado?requestType=WADO&studyUID={STUDY}&seriesUID={SERIES}"
    dicom = httpx.get(f"{base}&objectUID={instance(1)}&contentType=application/dicom")
    assert dicom.status_code == 200
    assert dicom.headers["content-type"] == "application/dicom"
    assert dicom.content == loaded.files[instance(1)]
    jpeg = httpx.get(f"{base}&objectUID={instance(1)}&contentType=image/jpeg")
    assert jpeg.status_code == 200 and jpeg.content.startswith(b"\xff\xd8")
    png = httpx.get(f"{base}&objectUID={instance(1)}&contentType=image/png")
    assert png.content.startswith(b"\x89PNG")
    transcoded = httpx.get(
        f"{base}&objectUID={RLE_SOP}&contentType=application/dicom&transferSyntax={EXPLICIT}"
    )
    assert pydicom.dcmread(io.BytesIO(transcoded.content)).file_meta.TransferSyntaxUID == EXPLICIT
    assert httpx.get(f"{base}&objectUID=1.2.3.999&contentType=application/dicom").status_code == 404
    assert httpx.get(f"{loaded.server.url}/wado?objectUID={instance(1)}").status_code == 400


def test_unknown_resources_are_404(loaded: Loaded) -> None:
    assert httpx.get(f"{loaded.root}/studies/1.2.3.4.5.6/metadata").status_code == 404
    wrong_study = f"{loaded.root}/studies/{STUDY_2}/series/{SERIES}/metadata"
    assert httpx.get(wrong_study).status_code == 404
