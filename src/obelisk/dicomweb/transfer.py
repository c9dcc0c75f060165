"""Transfer syntaxes of stored files for DICOMweb: cutting out frames; transcoding whole
instances is :mod:`obelisk.services.transcoding` (shared with the DICOM sender), re-exported here.

Everything goes through pydicom and its pixel plugins (pylibjpeg, Pillow); what they cannot
produce is reported as ``NotAcceptable`` (406) so that the client may ask for something else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.encaps import get_frame
from pydicom.pixels.utils import pixel_array

from obelisk.errors import InexistentItem
from obelisk.services.transcoding import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    NotAcceptable,
    can_decode,
    can_produce,
    is_uncompressed,
    little_endian,
    read,
    transcode,
)

__all__ = [
    "Frames",
    "NotAcceptable",
    "can_decode",
    "can_produce",
    "extract_frames",
    "frame_count",
    "read",
    "transcode",
]


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
            pixels = little_endian(ds, pixels)
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
