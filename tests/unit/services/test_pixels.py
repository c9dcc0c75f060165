"""The rendering pipeline on images with known pixels: windows, rescale, photometry, codecs."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.uid import JPEG2000Lossless

from obelisk.errors import InexistentItem, ObeliskError, ParameterOutOfRange
from obelisk.services import pixels as px
from tests.support.images import decode_png, gradient, jpeg_baseline, make_image, rle, to_bytes


def test_window_from_the_dataset_after_rescale() -> None:
    # stored 0..4095, modality = stored - 1024; window [0, 400] in modality units
    ds = make_image(
        gradient(4, 4096), RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=200, WindowWidth=401
    )
    out = decode_png(px.render(to_bytes(ds)))
    assert out.dtype == np.uint8
    row = out[0]
    assert row[:1024].max() == 0  # below the window (modality < 0)
    assert row[1024 + 400 :].min() == 255  # above the window
    assert row[1024 + 200] in (127, 128)  # the centre is mid-grey
    assert np.all(np.diff(row.astype(int)) >= 0)


def test_request_window_overrides_the_dataset() -> None:
    ds = make_image(gradient(2, 11, high=1000), WindowCenter=500, WindowWidth=1000)
    options = px.RenderOptions(window=px.Window(center=100, width=2))
    row = decode_png(px.render(ds, 0, options))[0]
    assert list(row) == [0] + [255] * 10


def test_rescale_slope_is_applied_before_the_window() -> None:
    ds = make_image(gradient(1, 3, high=100), RescaleSlope=2, RescaleIntercept=0)
    ds.WindowCenter, ds.WindowWidth = 100, 201  # modality 0, 100, 200
    low, middle, high = decode_png(px.render(ds))[0].tolist()
    assert low <= 1 and middle == 128 and high == 255


def test_without_window_the_full_range_is_used() -> None:
    ds = make_image(gradient(1, 3, high=3000))
    assert list(decode_png(px.render(ds))[0]) == [0, 128, 255]


def test_orthanc_windowing_matches_orthanc_1_10_1() -> None:
    # values recorded from Orthanc 1.10.1's /instances/{id}/rendered on the same images
    columns = [0, 8, 16, 24, 32]
    ct = make_image(gradient(2, 40, high=2000), RescaleIntercept=-1000, WindowCenter=0)
    ct.WindowWidth = 1000
    orthanc = px.RenderOptions(orthanc_windowing=True)
    assert decode_png(px.render(ct, 0, orthanc))[0, columns].tolist() == [0, 0, 81, 186, 255]
    del ct.WindowCenter, ct.WindowWidth  # no window: the range of BitsStored
    assert decode_png(px.render(ct, 0, orthanc))[0, columns].tolist() == [0, 0, 0, 0, 2]
    mono1 = make_image(gradient(2, 40, high=2000), photometric="MONOCHROME1")
    mono1.WindowCenter, mono1.WindowWidth = 1000, 1000
    assert decode_png(px.render(mono1, 0, orthanc))[0, columns].tolist() == [255, 255, 174, 69, 0]


def test_monochrome1_is_inverted() -> None:
    normal = make_image(gradient(1, 3, high=3000))
    inverted = make_image(gradient(1, 3, high=3000), photometric="MONOCHROME1")
    assert list(decode_png(px.render(inverted))[0]) == [255, 127, 0]
    assert list(decode_png(px.preview(inverted))[0]) == [255, 127, 0]
    assert list(decode_png(px.preview(normal))[0]) == [0, 128, 255]


def test_rgb_is_not_windowed() -> None:
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[..., 0], pixels[..., 2] = 200, 30
    ds = make_image(pixels, photometric="RGB", WindowCenter=0, WindowWidth=1)
    out = decode_png(px.render(ds))
    assert out.shape == (4, 4, 3)
    assert out[0, 0].tolist() == [200, 0, 30]


def test_multi_frame_renders_the_requested_frame() -> None:
    frames = np.stack([np.full((4, 4), value, np.uint8) for value in (10, 20, 30)])
    ds = make_image(frames, frames=3, WindowCenter=128, WindowWidth=256)
    assert px.frame_count(ds) == 3
    assert int(decode_png(px.render(ds, 2))[0, 0]) == 30
    assert int(decode_png(px.truncated(ds, 1, kind=px.IntegerKind.UINT8))[0, 0]) == 20
    with pytest.raises(InexistentItem):
        px.render(ds, 3)
    assert px.numpy_array(ds, None, rescale=False).shape == (3, 4, 4, 1)


def test_rle_is_decoded() -> None:
    original = gradient(16, 16, high=4095)
    data = to_bytes(rle(make_image(original)))
    dataset = px.load(data)
    assert dataset.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
    assert np.array_equal(px.decode_frame(dataset), original)
    assert list(decode_png(px.render(data))[0, [0, -1]]) == [0, 255]


def test_jpeg_baseline_grey_and_colour_are_decoded() -> None:
    grey = to_bytes(jpeg_baseline(make_image(gradient(16, 16, high=255).astype(np.uint8))))
    decoded = px.decode_frame(px.load(grey))
    assert abs(int(decoded[0, 0])) <= 3 and abs(int(decoded[0, -1]) - 255) <= 3
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 0] = 220
    rgb = to_bytes(jpeg_baseline(make_image(colour, photometric="RGB")))
    red = decode_png(px.render(rgb))[8, 8]
    assert red[0] > 200 and red[1] < 20 and red[2] < 20  # YBR converted back to RGB


def test_jpeg2000_lossless_round_trip() -> None:
    original = gradient(64, 64, high=4095)
    ds = make_image(original)
    ds.compress(JPEG2000Lossless)
    assert np.array_equal(px.decode_frame(px.load(to_bytes(ds))), original)


def test_raw_frame_is_the_stored_stream() -> None:
    native = make_image(np.arange(2 * 4 * 4, dtype=np.uint16).reshape(2, 4, 4), frames=2)
    raw, media_type = px.raw_frame(native, 1)
    assert media_type == "application/octet-stream"
    assert np.frombuffer(raw, "<u2").tolist() == list(range(16, 32))
    assert gzip.decompress(px.raw_frame_gz(native, 1)) == raw
    jpeg = jpeg_baseline(make_image(gradient(8, 8, high=255).astype(np.uint8)))
    stream, media_type = px.raw_frame(px.load(to_bytes(jpeg)), 0)
    assert media_type == "image/jpeg" and stream.startswith(b"\xff\xd8")


def test_truncation_to_integer_types() -> None:
    ds = make_image(np.array([[0, 100, 300, 1000]], np.int16))
    assert decode_png(px.truncated(ds, 0, kind=px.IntegerKind.UINT8)).tolist() == [
        [0, 100, 255, 255]
    ]
    values = np.array([[-5, 7, 40000]], np.int32)
    ds = make_image(values.astype(np.uint16))  # 40000 stays unsigned
    assert decode_png(px.truncated(ds, 0, kind=px.IntegerKind.UINT16)).tolist() == [
        [65531, 7, 40000]
    ]
    signed = make_image(np.array([[-5, 7]], np.int16))
    raw = np.asarray(Image.open(io.BytesIO(px.truncated(signed, 0, kind=px.IntegerKind.INT16))))
    assert raw.astype(np.uint16).view(np.int16).tolist() == [[-5, 7]]


def test_viewport_keeps_the_aspect_ratio_and_crops() -> None:
    ds = make_image(gradient(20, 40, high=255).astype(np.uint8))
    image = Image.open(io.BytesIO(px.render(ds, 0, px.RenderOptions(viewport=px.Viewport(10)))))
    assert image.size == (10, 5)
    boxed = px.RenderOptions(viewport=px.Viewport(100, 10))
    assert Image.open(io.BytesIO(px.render(ds, 0, boxed))).size == (20, 10)
    flipped = px.RenderOptions(viewport=px.Viewport(0, 0, crop=(40, 0, -40, 20)))
    row = decode_png(px.render(ds, 0, flipped))[0]
    assert row[0] > row[-1]


def test_jpeg_output_and_quality() -> None:
    ds = make_image(gradient(32, 32, high=255).astype(np.uint8))
    low = px.render(ds, 0, px.RenderOptions(format=px.ImageFormat.JPEG, quality=5))
    high = px.render(ds, 0, px.RenderOptions(format=px.ImageFormat.JPEG, quality=100))
    assert low.startswith(b"\xff\xd8") and len(low) < len(high)
    with pytest.raises(ParameterOutOfRange):
        px.render(ds, 0, px.RenderOptions(format=px.ImageFormat.JPEG, quality=0))


def test_colour_images_have_no_integer_rendering() -> None:
    ds = make_image(np.zeros((2, 2, 3), np.uint8), photometric="RGB")
    with pytest.raises(ObeliskError) as caught:
        px.truncated(ds, 0, kind=px.IntegerKind.UINT8)
    assert caught.value.http_status == 415
    assert px.matlab_text(ds).startswith("double(permute(reshape([ 0 0 0 ")


def test_nearest_resize_samples_pixel_centres() -> None:
    ds = make_image(np.arange(8, dtype=np.uint8)[None, :].repeat(2, axis=0))
    options = px.RenderOptions(
        viewport=px.Viewport(20), smooth=False, window=px.Window(127.5, 256, "linear-exact")
    )
    # the columns Orthanc 1.10.1 picks when enlarging 8 columns to 20
    expected = [0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5, 6, 6, 7, 7, 7]
    assert decode_png(px.render(ds, 0, options))[0].tolist() == expected


def test_pam_output() -> None:
    ds = make_image(np.array([[1, 2]], np.uint8))
    data = px.preview(ds, 0, px.ImageFormat.PAM)
    assert data.startswith(b"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 1\nMAXVAL 255\n")
    assert data.endswith(b"ENDHDR\n\x00\xff")


def test_undecodable_pixel_data_is_415() -> None:
    ds = make_image(gradient(8, 8))
    del ds.PixelData
    with pytest.raises(ObeliskError) as caught:
        px.render(ds)
    assert caught.value.http_status == 415


@pytest.mark.parametrize(
    ("tool", "options", "syntax"),
    [
        ("dcmcjpls", ["+el"], "1.2.840.10008.1.2.4.80"),  # JPEG-LS lossless
        ("dcmcjpeg", ["+e1"], "1.2.840.10008.1.2.4.70"),  # JPEG lossless, first-order prediction
        ("dcmcjpeg", ["+el"], "1.2.840.10008.1.2.4.57"),  # JPEG lossless, process 14
        ("dcmcrle", [], "1.2.840.10008.1.2.5"),  # RLE written by another implementation
    ],
)
def test_streams_written_by_dcmtk_are_decoded(
    tmp_path: Path, tool: str, options: list[str], syntax: str
) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} (dcmtk) is not installed")
    original = gradient(32, 32, high=4000)
    source, target = tmp_path / "in.dcm", tmp_path / "out.dcm"
    source.write_bytes(to_bytes(make_image(original)))
    subprocess.run([tool, *options, str(source), str(target)], check=True, capture_output=True)
    dataset = px.load(target.read_bytes())
    assert dataset.file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(px.decode_frame(dataset), original)
