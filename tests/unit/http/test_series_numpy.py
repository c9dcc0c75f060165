"""``GET /series/{id}/numpy``: the frames of a series in slice order, as Orthanc 1.10.1 gives them
(shapes, dtypes, the ``rescale``/``compress`` arguments and the errors checked against it)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from tests.support.synthetic import make_ct_instance, uid

SEED = "numpy-series"
UPLOAD_ORDER = [3, 1, 4, 2]


def _slice(number: int, *, series: str = "se", **extra: Any) -> bytes:
    return make_ct_instance(
        "PNUMPY",
        "DOE^J",
        uid(SEED, "st"),
        uid(SEED, series),
        uid(SEED, series, number),
        number,
        extra.pop("rows", 8),
        extra.pop("cols", 6),
        slices_in_series=4,
        extra={"RescaleSlope": "2", "RescaleIntercept": "-5", **extra},
    )


def _upload(client: TestClient, data: bytes) -> str:
    answer = client.post("/instances", content=data)
    assert answer.status_code == 200, answer.text
    instance: str = answer.json()["ID"]
    return instance


def _series_of(client: TestClient, instance: str) -> str:
    series: str = client.get(f"/instances/{instance}/series").json()["ID"]
    return series


def _load(content: bytes) -> np.ndarray[Any, Any]:
    loaded = np.load(io.BytesIO(content))
    if isinstance(loaded, np.lib.npyio.NpzFile):
        assert loaded.files == ["arr_0"]
        loaded = loaded["arr_0"]
    assert isinstance(loaded, np.ndarray)
    return loaded


@pytest.fixture
def series(client: TestClient) -> str:
    instances = [_upload(client, _slice(n)) for n in UPLOAD_ORDER]
    return _series_of(client, instances[0])


def test_frames_stacked_in_slice_order(client: TestClient, series: str) -> None:
    answer = client.get(f"/series/{series}/numpy")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.content.startswith(b"\x93NUMPY")
    volume = _load(answer.content)
    assert volume.shape == (4, 8, 6, 1) and volume.dtype == np.float32
    ordered = [s[0] for s in client.get(f"/series/{series}/ordered-slices").json()["SlicesShort"]]
    for depth, instance in enumerate(ordered):
        single = _load(client.get(f"/instances/{instance}/numpy").content)
        assert single.shape == (1, 8, 6, 1)
        assert np.array_equal(volume[depth], single[0])


def test_rescale_and_compress(client: TestClient, series: str) -> None:
    rescaled = _load(client.get(f"/series/{series}/numpy").content)
    for query in ("?rescale=false", "?rescale=0"):
        stored = _load(client.get(f"/series/{series}/numpy{query}").content)
        assert stored.shape == (4, 8, 6, 1) and stored.dtype == np.uint16
        assert np.array_equal(stored.astype(np.float32) * 2 - 5, rescaled)
    for query in ("?rescale=true", "?rescale=1", "?rescale", "?compress=false", "?compress=0"):
        answer = client.get(f"/series/{series}/numpy{query}")
        assert answer.content.startswith(b"\x93NUMPY")
        assert np.array_equal(_load(answer.content), rescaled)
    for query in ("?compress", "?compress=true", "?compress=1"):
        answer = client.get(f"/series/{series}/numpy{query}")
        assert answer.content.startswith(b"PK\x03\x04")
        assert np.array_equal(_load(answer.content), rescaled)
    stored = _load(client.get(f"/series/{series}/numpy?compress&rescale=false").content)
    assert stored.dtype == np.uint16


@pytest.mark.parametrize("value", ["foo", "TRUE", "True", "yes"])
def test_booleans_are_strict(client: TestClient, series: str, value: str) -> None:
    for path in (f"/series/{series}/numpy", f"/instances/{_any(client, series)}/numpy"):
        answer = client.get(f"{path}?rescale={value}")
        assert answer.status_code == 400
        body = answer.json()
        assert body["OrthancStatus"] == 3
        assert body["Details"] == f'Expected a Boolean for GET argument "rescale", found: {value}'


def _any(client: TestClient, series: str) -> str:
    instance: str = client.get(f"/series/{series}/instances").json()[0]["ID"]
    return instance


def test_unknown_series(client: TestClient) -> None:
    answer = client.get("/series/nope/numpy")
    assert answer.status_code == 404
    assert answer.json()["OrthancStatus"] == 17


def test_frames_of_different_sizes(client: TestClient) -> None:
    first = _upload(client, _slice(1, series="sizes"))
    _upload(client, _slice(2, series="sizes", rows=6, cols=8))
    answer = client.get(f"/series/{_series_of(client, first)}/numpy")
    assert answer.status_code == 500
    assert answer.json()["OrthancStatus"] == 24


def test_frames_of_different_formats(client: TestClient) -> None:
    first = _upload(client, _slice(1, series="formats"))
    _upload(client, _slice(2, series="formats", PixelRepresentation=1))
    series = _series_of(client, first)
    for query in ("", "?rescale=false"):
        answer = client.get(f"/series/{series}/numpy{query}")
        assert answer.status_code == 500
        assert answer.json()["OrthancStatus"] == 23


def test_multiframe_instances_give_every_frame(client: TestClient) -> None:
    frames = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    data = make_ct_instance(
        "PNUMPY",
        "DOE^J",
        uid(SEED, "st"),
        uid(SEED, "mf"),
        uid(SEED, "mf", 1),
        1,
        4,
        5,
        extra={"NumberOfFrames": 3, "PixelData": frames.tobytes()},
    )
    series = _series_of(client, _upload(client, data))
    volume = _load(client.get(f"/series/{series}/numpy?rescale=false").content)
    assert volume.shape == (3, 4, 5, 1)
    assert np.array_equal(volume[:, :, :, 0], frames)


def test_rescale_rounds_down_in_float32_as_orthanc(client: TestClient) -> None:
    """Values measured on Orthanc 1.10.1 (``floor(float32(slope) * v + float32(intercept))``)."""
    stored = np.array([[-3, -2, -1, 0, 1], [2, 3, 100, -100, -32768]], dtype=np.int16)
    cases = {
        ("2.5", "-5"): [-13, -10, -8, -5, -3, 0, 2, 245, -255, -81925],
        ("0.3", "0"): [-1, -1, -1, 0, 0, 0, 0, 30, -31, -9831],
        ("1", "0.7"): [-3, -2, -1, 0, 1, 2, 3, 100, -100, -32768],
        ("1", "1e40"): [np.finfo(np.float32).max] * 10,
    }
    for number, ((slope, intercept), expected) in enumerate(cases.items(), start=1):
        data = make_ct_instance(
            "PNUMPY",
            "DOE^J",
            uid(SEED, "st"),
            uid(SEED, "rescale", number),
            uid(SEED, "rescale", number, 1),
            1,
            2,
            5,
            extra={
                "RescaleSlope": slope,
                "RescaleIntercept": intercept,
                "PixelRepresentation": 1,
                "BitsStored": 16,
                "HighBit": 15,
                "PixelData": stored.tobytes(),
            },
        )
        instance = _upload(client, data)
        for path in (f"/series/{_series_of(client, instance)}", f"/instances/{instance}"):
            volume = _load(client.get(f"{path}/numpy").content)
            assert volume.dtype == np.float32
            assert volume.ravel().tolist() == expected
