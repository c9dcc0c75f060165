"""Decoding DICOM pixel data and rendering it as PNG/JPEG, for Orthanc's and DICOMweb's images.

One pipeline serves every route:

    stored bytes → :func:`decode_frame` (pydicom + pylibjpeg plugins: native, RLE, JPEG baseline/
    extended/lossless, JPEG-LS, JPEG 2000; YBR converted to RGB) → a numpy frame →
    one of the mappings below → :func:`encode` (Pillow PNG/JPEG, or PAM).

* :func:`render` (Orthanc ``/rendered``, DICOMweb ``/rendered`` and ``/thumbnail``, WADO-URI):
  rescale slope/intercept, then the window from the request or the dataset (full range when
  there is none), MONOCHROME1 inverted, then cropped/resized into the viewport.
* :func:`preview` (Orthanc ``/preview``): the full dynamic range of grayscale frames stretched to
  [0, 255].
* :func:`truncated` (Orthanc ``/image-uint8``, ``/image-uint16``, ``/image-int16``): stored
  values clipped to the range of the type.

Failures are ``ObeliskError`` with Orthanc's codes: a file that cannot be decoded is 415
(Unsupported media type), as in Orthanc; a frame out of range is ParameterOutOfRange.
"""

from __future__ import annotations

import enum
import gzip
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.decoders.base import get_decoder

from obelisk.core.levels import Level
from obelisk.errors import (
    BadFileFormat,
    ErrorCode,
    InexistentItem,
    ObeliskError,
    ParameterOutOfRange,
    UnknownResource,
)
from obelisk.services.resources import ResourceService

#: Compressed transfer syntaxes whose frames are complete image files of a known media type.
_RAW_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
}


class ImageFormat(enum.Enum):
    PNG = "image/png"
    JPEG = "image/jpeg"
    PAM = "image/x-portable-arbitrarymap"

    @property
    def media_type(self) -> str:
        return self.value


class IntegerKind(enum.Enum):
    """Orthanc's ``image-uint8`` / ``image-uint16`` / ``image-int16``."""

    UINT8 = (0, 255)
    UINT16 = (0, 65535)
    INT16 = (-32768, 32767)


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units; ``function`` is DICOM's VOI LUT Function."""

    center: float
    width: float
    function: str = "linear"


@dataclass(frozen=True)
class Viewport:
    """Output size (0 = follow the other side's scale), after an optional source crop.

    A negative crop width/height flips the image, as PS3.18 §8.3.5.1.3 defines.
    """

    width: int = 0
    height: int = 0
    crop: tuple[int, int, int, int] | None = None  # sx, sy, sw, sh


@dataclass(frozen=True)
class RenderOptions:
    format: ImageFormat = ImageFormat.PNG
    quality: int = 90
    window: Window | None = None  # None: the dataset's first window, else see orthanc_windowing
    viewport: Viewport | None = None
    smooth: bool = True
    #: Orthanc's ``/rendered``: without any window, the range of BitsStored ([0, 2^bits)) rather
    #: than the frame's own min/max, and a truncating linear ramp (as Orthanc 1.10.1 answers).
    orthanc_windowing: bool = False


# --- decoding -----------------------------------------------------------------------------------


def load(data: bytes | Dataset) -> Dataset:
    if isinstance(data, Dataset):
        return data
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:
        raise BadFileFormat("Cannot parse the DICOM file", details=str(exc)) from exc


def frame_count(dataset: Dataset) -> int:
    return int(dataset.get("NumberOfFrames", 1) or 1)


def _unsupported(details: str) -> ObeliskError:
    return ObeliskError(
        "Cannot decode the image", code=ErrorCode.UnsupportedMediaType, details=details
    )


def _check_frame(dataset: Dataset, frame: int, *, as_parameter: bool = False) -> None:
    """Refuses a frame the instance lacks: 404 for images, as Orthanc 1.10.1; 400 "Parameter out
    of range" with ``as_parameter``, as Orthanc answers for raw frames and ``/numpy``."""
    if "PixelData" not in dataset:
        raise _unsupported("The instance has no pixel data")
    count = frame_count(dataset)
    if not 0 <= frame < count:
        message = f"Frame {frame} out of range: the instance has {count} frames"
        raise ParameterOutOfRange(message) if as_parameter else InexistentItem(message)


def decode_frame(dataset: Dataset, frame: int = 0) -> NDArray[np.generic]:
    """Stored values of one frame (0-based): ``(rows, cols)`` or ``(rows, cols, 3)`` in RGB."""
    _check_frame(dataset, frame)
    syntax = dataset.file_meta.get("TransferSyntaxUID", pydicom.uid.ExplicitVRLittleEndian)
    try:
        array, _ = get_decoder(syntax).as_array(dataset, index=frame, as_rgb=True)  # type: ignore[arg-type]
    except Exception as exc:  # any decoder failure: missing plugin, corrupt stream, bad header
        raise _unsupported(f"{syntax}: {exc}") from exc
    return array


def is_grayscale(array: NDArray[np.generic]) -> bool:
    return array.ndim == 2


def _inverted(dataset: Dataset) -> bool:
    return str(dataset.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"


def modality_values(dataset: Dataset, array: NDArray[np.generic]) -> NDArray[np.float64]:
    """Rescale slope/intercept applied (grayscale frames only)."""
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    return array.astype(np.float64) * slope + intercept


def _first(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return float(value[0]) if len(value) else None
    return float(value)  # type: ignore[arg-type]


def dataset_window(dataset: Dataset) -> Window | None:
    center = _first(dataset.get("WindowCenter"))
    width = _first(dataset.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        return None
    function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").lower().replace("_", "-")
    return Window(center, width, function)


def apply_window(values: NDArray[np.float64], window: Window) -> NDArray[np.uint8]:
    """PS3.3 C.11.2.1.2 (linear, linear-exact, sigmoid) mapped to [0, 255]; "orthanc": see above."""
    c, w = window.center, max(window.width, 1e-6)
    if window.function == "orthanc":
        return np.clip(np.floor((values - c + w / 2) * 255.0 / w), 0, 255).astype(np.uint8)
    if window.function == "sigmoid":
        out = 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    elif window.function == "linear-exact":
        out = ((values - c) / w + 0.5) * 255.0
    else:
        w = max(w, 1.0)
        out = ((values - (c - 0.5)) / max(w - 1.0, 1e-6) + 0.5) * 255.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _stretch(values: NDArray[np.float64]) -> NDArray[np.uint8]:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _color_to_8bit(array: NDArray[np.generic], dataset: Dataset) -> NDArray[np.uint8]:
    if array.dtype == np.uint8:
        return np.asarray(array, dtype=np.uint8)
    bits = int(dataset.get("BitsStored", 8) or 8)
    return np.clip(array.astype(np.float64) * (255.0 / ((1 << bits) - 1)), 0, 255).astype(np.uint8)


# --- the three mappings -------------------------------------------------------------------------


def rendered_pixels(
    dataset: Dataset, frame: int = 0, window: Window | None = None, *, orthanc: bool = False
) -> NDArray[np.uint8]:
    array = decode_frame(dataset, frame)
    if not is_grayscale(array):
        return _color_to_8bit(array, dataset)  # colour images are not affected by windowing
    values = modality_values(dataset, array)
    window = window or dataset_window(dataset)
    if orthanc:
        bits = int(dataset.get("BitsStored", 16) or 16)
        window = window or Window(float(1 << (bits - 1)), float(1 << bits))
        window = Window(window.center, window.width, "orthanc")
    out = apply_window(values, window) if window else _stretch(values)
    return 255 - out if _inverted(dataset) else out


def preview_pixels(dataset: Dataset, frame: int = 0) -> NDArray[np.uint8]:
    array = decode_frame(dataset, frame)
    if not is_grayscale(array):
        return _color_to_8bit(array, dataset)
    out = _stretch(array.astype(np.float64))
    return 255 - out if _inverted(dataset) else out


def truncated_pixels(dataset: Dataset, frame: int, kind: IntegerKind) -> NDArray[np.generic]:
    array = decode_frame(dataset, frame)
    if not is_grayscale(array):  # Orthanc 1.10.1 answers 415 for colour images here
        raise _unsupported(f"Cannot convert a colour image to {kind.name.lower()}")
    low, high = kind.value
    clipped = np.clip(array.astype(np.int64), low, high)
    if kind is IntegerKind.UINT8:
        return clipped.astype(np.uint8)
    # int16 is sent as two's complement in a 16-bit image, as Orthanc does
    return clipped.astype(np.int16).view(np.uint16) if low < 0 else clipped.astype(np.uint16)


# --- geometry and encoding ----------------------------------------------------------------------


def _target_size(width: int, height: int, viewport: Viewport) -> tuple[int, int]:
    if viewport.width > 0 and viewport.height > 0:
        scale = min(viewport.width / width, viewport.height / height)
    elif viewport.width > 0:
        scale = viewport.width / width
    elif viewport.height > 0:
        scale = viewport.height / height
    else:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit(pixels: NDArray[np.generic], viewport: Viewport | None, smooth: bool) -> Image.Image:
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if viewport is None:
        return image
    if viewport.crop is not None:
        sx, sy, sw, sh = viewport.crop
        sw = sw or image.width - sx
        sh = sh or image.height - sy
        box = (min(sx, sx + sw), min(sy, sy + sh), max(sx, sx + sw), max(sy, sy + sh))
        image = image.crop(box)
        if sw < 0:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if sh < 0:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    size = _target_size(image.width, image.height, viewport)
    if size == image.size:
        return image
    if smooth:
        return image.resize(size, Image.Resampling.BILINEAR)
    return Image.fromarray(_nearest(np.asarray(image), size))


def _nearest(array: NDArray[np.generic], size: tuple[int, int]) -> NDArray[np.generic]:
    """Nearest neighbour sampling pixel centres in exact integers (as Orthanc does; Pillow's
    floating-point version picks the other neighbour on some exact ties)."""
    width, height = size
    rows, cols = array.shape[0], array.shape[1]
    ys = ((2 * np.arange(height) + 1) * rows) // (2 * height)
    xs = ((2 * np.arange(width) + 1) * cols) // (2 * width)
    return np.ascontiguousarray(array[ys][:, xs])


def _pam(image: Image.Image) -> bytes:
    array = np.asarray(image)
    depth = 1 if array.ndim == 2 else array.shape[2]
    maxval = 255 if array.dtype == np.uint8 else 65535
    tupltype = "GRAYSCALE" if depth == 1 else "RGB"
    header = (
        f"P7\nWIDTH {image.width}\nHEIGHT {image.height}\nDEPTH {depth}\n"
        f"MAXVAL {maxval}\nTUPLTYPE {tupltype}\nENDHDR\n"
    )
    body = array.astype(">u2").tobytes() if maxval > 255 else array.tobytes()
    return header.encode() + body


def encode(image: Image.Image, fmt: ImageFormat, quality: int = 90) -> bytes:
    if not 1 <= quality <= 100:
        raise ParameterOutOfRange("The JPEG quality must be between 1 and 100")
    if fmt is ImageFormat.PAM:
        return _pam(image)
    buffer = io.BytesIO()
    if fmt is ImageFormat.JPEG:
        if image.mode not in ("L", "RGB"):
            raise ObeliskError(
                "JPEG can only hold 8-bit images", code=ErrorCode.NotAcceptable, http_status=406
            )
        image.save(buffer, format="JPEG", quality=quality)
    else:
        # zlib level 3: a quarter of the default level's time for ~20% more bytes (512x512 CT)
        image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def render(data: bytes | Dataset, frame: int = 0, options: RenderOptions | None = None) -> bytes:
    """Windowed rendering of one frame (0-based) as PNG/JPEG: the entry point for WADO-URI too."""
    options = options or RenderOptions()
    dataset = load(data)
    pixels = rendered_pixels(dataset, frame, options.window, orthanc=options.orthanc_windowing)
    return encode(fit(pixels, options.viewport, options.smooth), options.format, options.quality)


def preview(
    data: bytes | Dataset, frame: int = 0, fmt: ImageFormat = ImageFormat.PNG, quality: int = 90
) -> bytes:
    return encode(fit(preview_pixels(load(data), frame), None, False), fmt, quality)


def truncated(
    data: bytes | Dataset,
    frame: int,
    fmt: ImageFormat = ImageFormat.PNG,
    quality: int = 90,
    *,
    kind: IntegerKind,
) -> bytes:
    return encode(fit(truncated_pixels(load(data), frame, kind), None, False), fmt, quality)


def raw_frame(data: bytes | Dataset, frame: int = 0) -> tuple[bytes, str]:
    """The frame's bytes as stored (a JPEG/J2K stream for those syntaxes) and its media type."""
    dataset = load(data)
    _check_frame(dataset, frame, as_parameter=True)
    syntax = str(dataset.file_meta.get("TransferSyntaxUID", ""))
    pixel_data: bytes = dataset.PixelData
    if syntax in pydicom.uid.AllTransferSyntaxes and pydicom.uid.UID(syntax).is_compressed:
        frames = generate_frames(pixel_data, number_of_frames=frame_count(dataset))
        for index, fragment in enumerate(frames):
            if index == frame:
                return fragment, _RAW_MEDIA_TYPES.get(syntax, "application/octet-stream")
        raise _unsupported("Missing frame in the encapsulated pixel data")
    size = (
        int(dataset.Rows)
        * int(dataset.Columns)
        * int(dataset.get("SamplesPerPixel", 1))
        * int(dataset.BitsAllocated)
        // 8
    )
    return pixel_data[frame * size : (frame + 1) * size], "application/octet-stream"


def raw_frame_gz(data: bytes | Dataset, frame: int = 0) -> bytes:
    return gzip.compress(raw_frame(data, frame)[0])


def numpy_array(data: bytes | Dataset, frame: int | None, *, rescale: bool) -> NDArray[np.generic]:
    """Orthanc's ``/numpy``: (height, width, channels) for a frame, with frames first else."""
    dataset = load(data)
    if frame is not None:
        _check_frame(dataset, frame, as_parameter=True)
    frames = [frame] if frame is not None else range(frame_count(dataset))
    arrays = [_numpy_frame(dataset, decode_frame(dataset, index), rescale) for index in frames]
    return arrays[0] if frame is not None else np.stack(arrays)


def _numpy_frame(
    dataset: Dataset, decoded: NDArray[np.generic], rescale: bool
) -> NDArray[np.generic]:
    """A decoded frame as ``/numpy`` gives it: (height, width, channels), grayscale rescaled to
    float32 on request."""
    if not is_grayscale(decoded):
        return decoded
    array = _rescaled_float32(dataset, decoded) if rescale else decoded
    return array[:, :, np.newaxis]


def _rescaled_float32(dataset: Dataset, decoded: NDArray[np.generic]) -> NDArray[np.float32]:
    """Orthanc's rescale for ``/numpy``: ``slope * value + intercept`` in float32 arithmetic,
    clamped to the float32 range and rounded down (Orthanc 1.10.1 floors, e.g. 42.5 → 42)."""
    with np.errstate(over="ignore", invalid="ignore"):
        slope = np.float32(float(dataset.get("RescaleSlope", 1) or 1))
        intercept = np.float32(float(dataset.get("RescaleIntercept", 0) or 0))
        values = decoded.astype(np.float32) * slope + intercept
    limit = np.finfo(np.float32).max
    clamped: NDArray[np.float32] = np.floor(np.clip(values, -limit, limit))
    return clamped


def numpy_volume(
    frames: Iterable[tuple[Dataset, int]], depth: int, *, rescale: bool
) -> NDArray[np.generic]:
    """Orthanc's ``/series/{id}/numpy``: ``depth`` frames, given as (dataset, frame number) in
    slice order, stacked as (frame, height, width, channels). Every frame must decode to the
    size and pixel format of the first one, as Orthanc requires."""
    volume: NDArray[np.generic] | None = None
    first: tuple[tuple[int, ...], np.dtype[Any]] | None = None
    position = 0
    for dataset, frame in frames:
        decoded = decode_frame(dataset, frame)
        if first is None:
            first = (decoded.shape, decoded.dtype)
        elif decoded.shape[:2] != first[0][:2]:
            raise ObeliskError(
                code=ErrorCode.IncompatibleImageSize,
                details="The size of the frames varies across the instance(s)",
            )
        elif (decoded.shape, decoded.dtype) != first:
            raise ObeliskError(
                code=ErrorCode.IncompatibleImageFormat,
                details="The pixel format of the frames varies across the instance(s)",
            )
        array = _numpy_frame(dataset, decoded, rescale)
        if volume is None:
            volume = np.empty((depth, *array.shape), dtype=array.dtype)
        if position >= depth:
            raise ObeliskError(code=ErrorCode.BadSequenceOfCalls, details="Too many frames")
        volume[position] = array
        position += 1
    if volume is None or position != depth:
        raise ObeliskError(code=ErrorCode.BadSequenceOfCalls, details="Missing frames")
    return volume


def matlab_text(data: bytes | Dataset, frame: int = 0) -> str:
    """Orthanc's ``/matlab``: stored values as an Octave/Matlab expression for ``eval()``."""
    array = decode_frame(load(data), frame)
    if is_grayscale(array):
        rows = " ; ".join(" ".join(str(v) for v in row) for row in array.tolist())
        return f"double([ {rows} ])"
    values = " ".join(str(v) for v in array.reshape(-1).tolist())
    height, width = array.shape[0], array.shape[1]
    return f"double(permute(reshape([ {values} ], [ 3 {height} {width} ]), [ 3 2 1 ]))"


def numpy_file(array: NDArray[np.generic], *, compress: bool) -> bytes:
    buffer = io.BytesIO()
    if compress:
        np.savez_compressed(buffer, array)
    else:
        np.save(buffer, array)
    return buffer.getvalue()


# --- the service over stored instances ----------------------------------------------------------


class PixelService:
    """Reads stored instances for the image routes; the rendering itself is the functions above."""

    def __init__(self, resources: ResourceService) -> None:
        self.resources = resources

    def dataset(self, instance_id: str) -> Dataset:
        return self.resources.dataset(instance_id)

    def series_numpy(self, public_id: str, *, rescale: bool) -> NDArray[np.generic]:
        """The frames of a series in the order of ``/series/{id}/ordered-slices``, stacked."""
        slices, _ = self.resources.ordered_slices(public_id)

        def frames() -> Iterator[tuple[Dataset, int]]:
            for piece in slices:  # one instance in memory at a time
                dataset = self.dataset(piece.public_id)
                for frame in range(piece.frames):
                    yield dataset, frame

        return numpy_volume(frames(), sum(piece.frames for piece in slices), rescale=rescale)

    def representative_instance(self, level: Level, public_id: str) -> str:
        """The middle instance (by InstanceNumber) of a study/series, for thumbnails."""
        if level is Level.INSTANCE:
            self.resources.get(level, public_id)
            return public_id
        instances = self.resources.instances_of(level, public_id)
        if not instances:
            raise UnknownResource(f"No instance below {public_id}")

        def number(resource: object) -> int:
            text = getattr(resource, "main_tags", {}).get("InstanceNumber", "")
            return int(text) if str(text).strip().lstrip("-").isdigit() else 0

        ordered = sorted(instances, key=number)
        return ordered[len(ordered) // 2].public_id

    def render_resource(
        self, level: Level, public_id: str, frame: int, options: RenderOptions
    ) -> bytes:
        instance = self.representative_instance(level, public_id)
        return render(self.dataset(instance), frame, options)
