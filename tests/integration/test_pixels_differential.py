"""Orthanc's image routes, side by side with Orthanc 1.10.1 on the same files: same pixels."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.integration.server_process import ObeliskProcess
from tests.support.images import gradient, jpeg_baseline, make_image, rle, to_bytes
from tests.support.orthanc import orthanc_available, running_orthanc

pytestmark = [
    pytest.mark.orthanc,
    pytest.mark.skipif(not orthanc_available(), reason="Orthanc 1.10.1 is not installed"),
]


def _images() -> dict[str, bytes]:
    ramp = gradient(20, 40, high=2000)
    colour = np.zeros((16, 24, 3), np.uint8)
    colour[..., 0] = np.linspace(0, 255, 24).astype(np.uint8)
    colour[..., 2] = 90
    frames = np.stack([gradient(8, 8, high=255).astype(np.uint8) // k for k in (1, 2, 4)])
    return {
        "ct": to_bytes(
            make_image(
                ramp, RescaleIntercept=-1000, RescaleSlope=1, WindowCenter=0, WindowWidth=1000
            )
        ),
        "no-window": to_bytes(make_image(ramp, RescaleIntercept=-1000, RescaleSlope=1)),
        "monochrome1": to_bytes(
            make_image(ramp, photometric="MONOCHROME1", WindowCenter=1000, WindowWidth=1000)
        ),
        "signed": to_bytes(make_image(ramp.astype(np.int16) - 1000)),
        "rgb": to_bytes(make_image(colour, photometric="RGB")),
        "multi-frame": to_bytes(make_image(frames, frames=3, WindowCenter=128, WindowWidth=256)),
        "rle": to_bytes(rle(make_image(ramp, WindowCenter=1000, WindowWidth=2000))),
        "jpeg": to_bytes(jpeg_baseline(make_image(gradient(16, 16, high=255).astype(np.uint8)))),
    }


ROUTES = [
    "preview",
    "rendered",
    "rendered?window-center=500&window-width=300",
    "rendered?width=20",
    "rendered?width=10&height=30",
    "image-uint8",
    "image-uint16",
    "frames/0/rendered",
    "frames/0/preview?quality=50",
]


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, dict[str, tuple[str, str]]]]:
    root = tmp_path_factory.mktemp("pixels")
    images = _images()
    (root / "obelisk").mkdir()
    with running_orthanc(root / "orthanc") as orthanc, ObeliskProcess(root / "obelisk") as obelisk:
        ids = {}
        for name, data in images.items():
            theirs = httpx.post(orthanc.url + "/instances", content=data).json()["ID"]
            ours = httpx.post(obelisk.url + "/instances", content=data).json()["ID"]
            ids[name] = (theirs, ours)
        yield orthanc.url, obelisk.url, ids


def _pixels(answer: httpx.Response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(answer.content)))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("image", list(_images()))
def test_same_pixels_as_orthanc(
    servers: tuple[str, str, dict[str, tuple[str, str]]], image: str, route: str
) -> None:
    orthanc_url, obelisk_url, ids = servers
    theirs_id, ours_id = ids[image]
    theirs = httpx.get(f"{orthanc_url}/instances/{theirs_id}/{route}")
    ours = httpx.get(f"{obelisk_url}/instances/{ours_id}/{route}")
    assert ours.status_code == theirs.status_code, ours.text
    if theirs.status_code != 200:
        return
    assert ours.headers["content-type"] == theirs.headers["content-type"]
    expected, got = _pixels(theirs), _pixels(ours)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    tolerance = 2 if image == "jpeg" else 1  # two JPEG decoders may round differently
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= tolerance


@pytest.mark.parametrize("image", ["ct", "multi-frame", "rle", "jpeg"])
def test_same_raw_frames_and_numpy(
    servers: tuple[str, str, dict[str, tuple[str, str]]], image: str
) -> None:
    orthanc_url, obelisk_url, ids = servers
    theirs_id, ours_id = ids[image]
    routes = ("frames/0/raw", "numpy", "numpy?rescale=0", "frames/0/numpy", "matlab")
    for route in routes:
        theirs = httpx.get(f"{orthanc_url}/instances/{theirs_id}/{route}")
        ours = httpx.get(f"{obelisk_url}/instances/{ours_id}/{route}")
        assert ours.status_code == theirs.status_code == 200, route
        if "numpy" not in route:
            assert ours.content == theirs.content, route
            continue
        expected, got = np.load(io.BytesIO(theirs.content)), np.load(io.BytesIO(ours.content))
        assert got.shape == expected.shape and got.dtype == expected.dtype, route
        assert np.allclose(got, expected, atol=2), route
