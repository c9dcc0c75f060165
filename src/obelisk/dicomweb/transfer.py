"""Transfer syntaxes of stored files: transcoding whole instances and cutting out frames.

Everything goes through pydicom and its pixel plugins (pylibjpeg, Pillow); what they cannot
produce is reported as ``NotAcceptable`` (406) so that the client may ask for something else.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.encaps import get_frame
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import get_encoder
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

from obelisk.dicomweb.media import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    is_uncompressed,
)
from obelisk.errors import BadFileFormat, ErrorCode, InexistentItem, ObeliskError


class NotAcceptable(ObeliskError):
    default_code = ErrorCode.NotAcceptable


def read(data: bytes, *, stop_before_pixels: bool = False) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=stop_before_pixels)
    except Exception as exc:
        raise BadFileFormat("Cannot parse a stored DICOM file") from exc


def _plugin_available(find: Callable[[UID], Any], transfer_syntax: str) -> bool:
    """Whether pydicom has a working decoder/encoder (``find``) for a transfer syntax."""
    try:
        return bool(find(UID(transfer_syntax)).is_available)
    except (NotImplementedError, ValueError):
        return False


def can_decode(transfer_syntax: str) -> bool:
    return is_uncompressed(transfer_syntax) or _plugin_available(get_decoder, transfer_syntax)


def can_produce(source: str, target: str) -> bool:
    """Whether :func:`transcode` can turn ``source`` into ``target`` (checked before streaming)."""
    if source == target:
        return True
    if is_uncompressed(target):
        raw = target in (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)
        return raw and can_decode(source)
    return can_decode(source) and _plugin_available(get_encoder, target)


def transcode(data: bytes, source: str, target: str) -> bytes:
    """The same instance in transfer syntax ``target`` (``data`` itself when nothing changes)."""
    if source == target:
        return data
    ds = read(data)
    try:
        if not is_uncompressed(source):
            ds.decompress(generate_instance_uid=False)  # to explicit VR little endian
        if is_uncompressed(target):
            _set_uncompressed(ds, target)
        else:
            ds.compress(UID(target), generate_instance_uid=False)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
    except NotAcceptable:
        raise
    except Exception as exc:
        raise NotAcceptable(
            f"Cannot transcode from {source} to {target}", details=str(exc)
        ) from exc
    return out.getvalue()


def _set_uncompressed(ds: pydicom.Dataset, target: str) -> None:
    if target not in (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN):
        raise NotAcceptable(f"Cannot transcode to {target}")
    if ds.file_meta.TransferSyntaxUID == EXPLICIT_VR_BIG_ENDIAN and "PixelData" in ds:
        ds.PixelData = _little_endian(ds, bytes(ds.PixelData))
    ds.file_meta.TransferSyntaxUID = UID(target)


@dataclass(frozen=True, slots=True)
class Frames:
    transfer_syntax: str
    frames: list[bytes]


def frame_count(ds: pydicom.Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def extract_frames(ds: pydicom.Dataset, numbers: Sequence[int], *, decode: bool) -> Frames:
    """Frames (1-based) as stored, or decoded to little-endian raw pixels when ``decode``."""
    if "PixelData" not in ds:
        raise InexistentItem("This instance has no pixel data")
    count = frame_count(ds)
    for number in numbers:
        if not 1 <= number <= count:
            raise InexistentItem(f"Frame {number} does not exist (the instance has {count})")
    stored = str(ds.file_meta.TransferSyntaxUID)
    if is_uncompressed(stored):
        size = _frame_size(ds)
        pixels = bytes(ds.PixelData)
        if stored == EXPLICIT_VR_BIG_ENDIAN:
            pixels = _little_endian(ds, pixels)
        cut = [pixels[(n - 1) * size : n * size] for n in numbers]
        # the bytes of a frame are the same in every uncompressed syntax once little-endian
        keep = stored in (IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN) and not decode
        return Frames(stored if keep else EXPLICIT_VR_LITTLE_ENDIAN, cut)
    if not decode:
        return Frames(
            stored, [get_frame(ds.PixelData, n - 1, number_of_frames=count) for n in numbers]
        )
    if not can_decode(stored):
        raise NotAcceptable(f"Cannot decode pixel data in transfer syntax {stored}")
    try:
        decoded = [np.ascontiguousarray(pixel_array(ds, index=n - 1)).tobytes() for n in numbers]
    except Exception as exc:
        raise NotAcceptable(f"Cannot decode the pixel data ({stored})", details=str(exc)) from exc
    return Frames(EXPLICIT_VR_LITTLE_ENDIAN, decoded)


def _frame_size(ds: pydicom.Dataset) -> int:
    bits = int(ds.get("BitsAllocated", 8))
    pixels = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
    return (pixels * bits + 7) // 8


def _little_endian(ds: pydicom.Dataset, pixels: bytes) -> bytes:
    bits = int(ds.get("BitsAllocated", 8))
    if bits <= 8:
        return pixels
    dtype = {16: ">u2", 32: ">u4", 64: ">u8"}[bits]
    return np.frombuffer(pixels, dtype=dtype).astype(dtype.replace(">", "<")).tobytes()
