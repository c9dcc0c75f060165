"""Finds chosen top-level elements of a DICOM Part 10 file by walking its raw bytes.

pydicom builds a Python object per element it meets, which costs about 1 ms for a CT header even
with ``specific_tags``; ingestion needs only ~50 values. This walker reads element headers with
``struct`` and keeps the raw bytes of the wanted tags, skipping everything else (sequences
included) by their lengths: about ten times cheaper.

It handles the little-endian transfer syntaxes (implicit and explicit VR, and every encapsulated
one, which are explicit VR little endian). Anything else — big endian, deflated, a VR that is not
one, a length that runs past the end, an undefined length outside a sequence — makes it return
``None``, and the caller falls back to pydicom, which either copes or raises a precise error.
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from dataclasses import dataclass

_IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
#: Transfer syntaxes whose dataset is not explicit VR little endian once the meta header is read.
_NOT_LITTLE_ENDIAN_EXPLICIT = {
    "1.2.840.10008.1.2.2",  # explicit VR big endian (retired)
    "1.2.840.10008.1.2.1.99",  # deflated explicit VR little endian
}
_TRANSFER_SYNTAX_UID = 0x00020010
#: pydicom's ``stop_before_pixels`` stops at these (Pixel Data, Float and Double Float Pixel Data).
_PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED_LENGTH = 0xFFFFFFFF
#: VRs whose explicit encoding has two reserved bytes and a 4-byte length.
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US".split())

_TAG_AND_VR = struct.Struct("<HH2s")
_TAG_AND_LENGTH = struct.Struct("<HHI")
_SHORT_LENGTH = struct.Struct("<H")
_LONG_LENGTH = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class RawElement:
    #: The VR written in the file; ``None`` for implicit VR (look it up in the dictionary).
    vr: str | None
    value: bytes


@dataclass(frozen=True, slots=True)
class HeaderScan:
    transfer_syntax: str
    #: The wanted top-level elements found before the pixel data, by tag.
    elements: dict[int, RawElement]
    #: Where the pixel data element starts (its tag), ``None`` when the file has none.
    pixel_data_offset: int | None


class _Unsupported(Exception):
    """The walker cannot read this file; pydicom must."""


def scan_header(data: bytes, wanted: Collection[int]) -> HeaderScan | None:
    """The wanted elements of a Part 10 file (``DICM`` at 128), or ``None`` to use pydicom."""
    try:
        meta, offset = _walk(data, 132, explicit=True, wanted={_TRANSFER_SYNTAX_UID}, meta=True)
        syntax_element = meta.get(_TRANSFER_SYNTAX_UID)
        if syntax_element is None:
            return None
        transfer_syntax = syntax_element.value.decode("ascii").rstrip(" \x00").strip()
        if transfer_syntax in _NOT_LITTLE_ENDIAN_EXPLICIT:
            return None
        explicit = transfer_syntax != _IMPLICIT_VR_LITTLE_ENDIAN
        elements, end = _walk(data, offset, explicit=explicit, wanted=wanted, meta=False)
    except (_Unsupported, struct.error, UnicodeDecodeError):
        return None
    pixel_data_offset = end if end < len(data) else None
    return HeaderScan(transfer_syntax, elements, pixel_data_offset)


def _walk(
    data: bytes, offset: int, *, explicit: bool, wanted: Collection[int], meta: bool
) -> tuple[dict[int, RawElement], int]:
    """Reads top-level elements from ``offset``; returns the wanted ones and where it stopped.

    It stops at the end of the data, at the pixel data, or — for the meta header — at the first
    element outside group 0x0002.
    """
    found: dict[int, RawElement] = {}
    size = len(data)
    while offset < size:
        if offset + 8 > size:
            raise _Unsupported
        if explicit:
            group, element, vr_bytes = _TAG_AND_VR.unpack_from(data, offset)
        else:
            group, element, length = _TAG_AND_LENGTH.unpack_from(data, offset)
        tag = group << 16 | element
        if meta and group != 0x0002:
            return found, offset
        if tag in _PIXEL_DATA_TAGS:
            return found, offset
        if explicit:
            length, value_start = _explicit_length(data, offset, vr_bytes)
            vr: str | None = vr_bytes.decode("ascii")
        else:
            vr = None
            value_start = offset + 8
        if length == _UNDEFINED_LENGTH:
            if explicit and vr not in ("SQ", "UN"):
                raise _Unsupported
            offset = _skip_sequence_items(data, value_start, explicit=explicit and vr == "SQ")
            continue
        offset = value_start + length
        if offset > size:
            raise _Unsupported
        if tag in wanted:
            found[tag] = RawElement(vr, data[value_start:offset])
    return found, offset


def _skip_sequence_items(data: bytes, offset: int, *, explicit: bool) -> int:
    """Skips the items of a sequence of undefined length; returns the offset after it."""
    size = len(data)
    while True:
        if offset + 8 > size:
            raise _Unsupported
        group, element, length = _TAG_AND_LENGTH.unpack_from(data, offset)
        tag = group << 16 | element
        offset += 8
        if tag == _SEQUENCE_DELIMITER:
            return offset
        if tag != _ITEM:
            raise _Unsupported
        if length == _UNDEFINED_LENGTH:
            offset = _skip_item_elements(data, offset, explicit=explicit)
        else:
            offset += length


def _skip_item_elements(data: bytes, offset: int, *, explicit: bool) -> int:
    """Skips the elements of an item of undefined length, up to and past its delimiter."""
    size = len(data)
    while True:
        if offset + 8 > size:
            raise _Unsupported
        group, element, length = _TAG_AND_LENGTH.unpack_from(data, offset)
        if group << 16 | element == _ITEM_DELIMITER:
            return offset + 8
        vr = b""
        if explicit:
            _, _, vr = _TAG_AND_VR.unpack_from(data, offset)
            length, offset = _explicit_length(data, offset, vr)
        else:
            offset += 8
        if length == _UNDEFINED_LENGTH:
            if explicit and vr not in (b"SQ", b"UN"):
                raise _Unsupported  # e.g. encapsulated pixel data inside an item
            offset = _skip_sequence_items(data, offset, explicit=explicit and vr == b"SQ")
        else:
            offset += length
            if offset > size:
                raise _Unsupported


def _explicit_length(data: bytes, offset: int, vr: bytes) -> tuple[int, int]:
    """(value length, value offset) of the explicit VR element header at ``offset``."""
    if vr in _SHORT_VRS:
        return _SHORT_LENGTH.unpack_from(data, offset + 6)[0], offset + 8
    if vr in _LONG_VRS:
        if offset + 12 > len(data):
            raise _Unsupported
        return _LONG_LENGTH.unpack_from(data, offset + 8)[0], offset + 12
    raise _Unsupported  # not a VR: pydicom knows the tricks for such files
