"""Orthanc's image routes and DICOMweb's rendered/thumbnail routes over the in-process app."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from tests.support.images import decode_png, gradient, make_image, to_bytes

STUDY = "1.2.826.0.1.3680043.8.498.7"
SERIES = STUDY + ".1"


def _upload(client: TestClient, data: bytes) -> str:
    answer = client.post("/instances", content=data)
    assert answer.status_code == 200, answer.text
    instance_id: str = answer.json()["ID"]
    return instance_id


@pytest.fixture
def ct(client: TestClient) -> str:
    ds = make_image(
        gradient(20, 40, high=2000),
        study_uid=STUDY,
        series_uid=SERIES,
        sop_uid=SERIES + ".1",
        RescaleIntercept=-1000,
        RescaleSlope=1,
        WindowCenter=0,
        WindowWidth=1000,
    )
    return _upload(client, to_bytes(ds))


@pytest.fixture
def multi(client: TestClient) -> str:
    frames = np.stack([np.full((8, 8), value, np.uint8) for value in (10, 200)])
    ds = make_image(
        frames,
        frames=2,
        study_uid=STUDY,
        series_uid=SERIES,
        sop_uid=SERIES + ".2",
        WindowCenter=128,
        WindowWidth=256,
    )
    ds.InstanceNumber = 2
    return _upload(client, to_bytes(ds))


def test_preview_is_png_by_default_and_jpeg_on_request(client: TestClient, ct: str) -> None:
    answer = client.get(f"/instances/{ct}/preview")
    assert answer.headers["content-type"] == "image/png"
    row = decode_png(answer.content)[0]
    assert (row[0], row[-1]) == (0, 255)  # the full dynamic range stretched
    jpeg = client.get(f"/instances/{ct}/preview", headers={"Accept": "image/jpeg"})
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.content.startswith(b"\xff\xd8")
    browser = "text/html,application/xhtml+xml,image/webp,*/*;q=0.8"
    assert client.get(f"/instances/{ct}/preview", headers={"Accept": browser}).headers[
        "content-type"
    ] == ("image/png")
    refused = client.get(f"/instances/{ct}/preview", headers={"Accept": "text/html"})
    assert refused.status_code == 406


def test_rendered_applies_window_and_size(client: TestClient, ct: str) -> None:
    row = decode_png(client.get(f"/instances/{ct}/rendered").content)[0]
    # modality -1000..1000, window [-500, 500]: the first quarter black, the last white
    assert row[:9].max() == 0 and row[-9:].min() == 255
    wide = client.get(f"/instances/{ct}/rendered?window-center=0&window-width=4000").content
    assert 60 < decode_png(wide)[0][0] < 70
    small = client.get(f"/instances/{ct}/frames/0/rendered?width=20&smooth=1").content
    assert Image.open(io.BytesIO(small)).size == (20, 10)
    quality = client.get(f"/instances/{ct}/rendered?quality=abc")
    assert quality.status_code == 400


def test_frames_routes(client: TestClient, multi: str) -> None:
    second = decode_png(client.get(f"/instances/{multi}/frames/1/image-uint8").content)
    assert int(second[0, 0]) == 200
    assert int(decode_png(client.get(f"/instances/{multi}/image-uint8").content)[0, 0]) == 10
    sixteen = Image.open(io.BytesIO(client.get(f"/instances/{multi}/image-uint16").content))
    assert sixteen.mode.startswith("I")
    raw = client.get(f"/instances/{multi}/frames/1/raw")
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.content == bytes([200]) * 64
    assert client.get(f"/instances/{multi}/frames/1/raw.gz").headers["content-type"] == (
        "application/gzip"
    )
    assert client.get(f"/instances/{multi}/frames/2/preview").status_code == 404  # as Orthanc


def test_numpy(client: TestClient, multi: str, ct: str) -> None:
    everything = np.load(io.BytesIO(client.get(f"/instances/{multi}/numpy").content))
    assert everything.shape == (2, 8, 8, 1) and int(everything[1, 0, 0, 0]) == 200
    assert everything.dtype == np.float32  # rescaled unless rescale=false, as in Orthanc
    stored = np.load(io.BytesIO(client.get(f"/instances/{multi}/numpy?rescale=0").content))
    assert stored.dtype == np.uint8
    frame = np.load(io.BytesIO(client.get(f"/instances/{ct}/frames/0/numpy?rescale=1").content))
    assert frame.dtype == np.float32 and frame.shape == (20, 40, 1)
    assert float(frame[0, 0, 0]) == -1000.0
    packed = np.load(io.BytesIO(client.get(f"/instances/{ct}/numpy?compress=1").content))
    assert packed["arr_0"].shape == (1, 20, 40, 1)


def test_matlab(client: TestClient, multi: str) -> None:
    text = client.get(f"/instances/{multi}/frames/1/matlab").text
    assert text.startswith("double([ 200 200") and text.count(" ; ") == 7


def test_unknown_instance_is_404(client: TestClient) -> None:
    assert client.get("/instances/nope/preview").status_code == 404


def test_dicomweb_rendered_and_thumbnails(client: TestClient, ct: str, multi: str) -> None:
    base = f"/dicom-web/studies/{STUDY}"
    instance = f"{base}/series/{SERIES}/instances/{SERIES}.1"
    answer = client.get(f"{instance}/rendered")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    png = client.get(f"{instance}/rendered?accept=image/png&viewport=10,10&window=0,4000")
    assert png.headers["content-type"] == "image/png"
    image = decode_png(png.content)
    assert image.shape == (5, 10) and 55 < int(image[0, 0]) < 75
    frames = f"{base}/series/{SERIES}/instances/{SERIES}.2/frames/2,1/rendered"
    frame = client.get(frames, headers={"Accept": "image/png"})
    assert abs(int(decode_png(frame.content)[0, 0]) - 200) <= 1  # the first listed frame
    for level in (base, f"{base}/series/{SERIES}", instance):
        thumbnail = client.get(f"{level}/thumbnail")
        assert thumbnail.status_code == 200, (level, thumbnail.text)
        assert max(Image.open(io.BytesIO(thumbnail.content)).size) == 128
    assert client.get(f"{base}/series/9.9/rendered").status_code == 404
    assert client.get(f"{instance}/frames/0/rendered").status_code == 400
    assert client.get(f"{instance}/rendered?viewport=1,2,3").status_code == 400
