"""Reads from a DICOM file's header exactly what the index needs, without touching pixel data.

The received bytes are never decoded and re-encoded: :func:`parse_instance` only looks at them.
Values of the indexed tags are decoded straight from the raw element bytes (about twice as fast as
letting pydicom convert every value); unusual character sets fall back to pydicom's conversion.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag

from obelisk.core.header_scan import HeaderScan, scan_header
from obelisk.core.identifiers import ResourceIds
from obelisk.core.levels import Level
from obelisk.core.tags import INDEXED_TAGS, MAIN_TAGS, vr_of
from obelisk.errors import BadFileFormat

_SPECIFIC_CHARACTER_SET = 0x00080005
_SOP_CLASS_UID = 0x00080016
_PATIENT_ID = 0x00100020
_STUDY_UID = 0x0020000D
_SERIES_UID = 0x0020000E
_SOP_INSTANCE_UID = 0x00080018
_INSTANCE_NUMBER = 0x00200013
_IMAGE_INDEX = 0x00541330
_WANTED = sorted({*INDEXED_TAGS, _SPECIFIC_CHARACTER_SET, _SOP_CLASS_UID})
_WANTED_SET = frozenset(_WANTED)

# Encodings we decode ourselves; anything else goes through pydicom.
_SIMPLE_CHARSETS = {
    "": "ascii",
    "ISO_IR 6": "ascii",
    "ISO_IR 100": "latin-1",
    "ISO_IR 192": "utf-8",
}
_TEXT_VRS = {"LT", "ST", "UT"}
_STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC"}
_STRING_VRS |= {"UI", "UR", "UT"}
#: struct formats of the integer VRs decoded from raw bytes (little endian).
_INTEGER_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}
_BINARY_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "AT", "OB", "OW", "OF", "OD", "OL", "UN", "SQ"}


@dataclass(slots=True)
class ParsedInstance:
    """What the index stores for one received instance."""

    ids: ResourceIds
    #: Main tags by level, keyword → string value (only the tags present in the file).
    main_tags: dict[Level, dict[str, str]]
    transfer_syntax: str
    sop_class_uid: str
    patient_id: str
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    index_in_series: int | None
    pixel_data_offset: int | None
    extra: dict[str, str] = field(default_factory=dict)


def parse_instance(data: bytes) -> ParsedInstance:
    """Parses a DICOM Part 10 file. Raises :class:`BadFileFormat` when it is not one.

    The raw-bytes walker (:mod:`obelisk.core.header_scan`) reads the common files; pydicom reads
    the others (big endian, deflated, unusual character sets or VRs) and explains bad ones.
    """
    if len(data) < 132 or data[128:132] != b"DICM":
        raise BadFileFormat("Not a DICOM file: the DICM prefix is missing")
    scan = scan_header(data, _WANTED_SET)
    if scan is not None:
        values = _scanned_values(scan)
        if values is not None:
            return _parsed(values, scan.transfer_syntax, scan.pixel_data_offset)
    return _parse_with_pydicom(data)


def _parse_with_pydicom(data: bytes) -> ParsedInstance:
    stream = io.BytesIO(data)
    try:
        dataset = pydicom.dcmread(stream, stop_before_pixels=True, specific_tags=_WANTED)
    except (InvalidDicomError, ValueError, EOFError, OSError, KeyError, IndexError) as exc:
        raise BadFileFormat("Cannot parse the DICOM file", details=str(exc)) from exc
    has_pixels = stream.tell() < len(data)
    pixel_data_offset = stream.tell() if has_pixels else None
    meta = dataset.file_meta
    transfer_syntax = str(getattr(meta, "TransferSyntaxUID", "") or "")
    if not transfer_syntax:
        raise BadFileFormat("The DICOM file has no TransferSyntaxUID in its meta header")

    # pydicom converts SpecificCharacterSet while reading (it needs it), so it is rarely raw.
    charset = _value(dataset, _SPECIFIC_CHARACTER_SET, "ascii") or ""
    encoding = _SIMPLE_CHARSETS.get(charset.split("\\")[0].strip())
    if "\\" in charset:
        encoding = None

    values: dict[int, str] = {}
    for tag in _WANTED:
        if tag == _SPECIFIC_CHARACTER_SET:
            continue
        value = _value(dataset, tag, encoding)
        if value is not None:
            values[tag] = value
    return _parsed(values, transfer_syntax, pixel_data_offset)


def _scanned_values(scan: HeaderScan) -> dict[int, str] | None:
    """The values of the scanned elements as text, or ``None`` when pydicom must convert them."""
    elements = scan.elements
    charset_element = elements.get(_SPECIFIC_CHARACTER_SET)
    charset = "" if charset_element is None else _decode_text(charset_element.value, "ascii")
    encoding = None if "\\" in charset else _SIMPLE_CHARSETS.get(charset.strip())
    if encoding is None:
        return None
    values: dict[int, str] = {}
    for tag, element in elements.items():
        if tag == _SPECIFIC_CHARACTER_SET:
            continue
        vr = element.vr or vr_of(tag)
        if vr is None:
            return None
        if vr in _INTEGER_FORMATS:
            raw = element.value
            size = struct.calcsize(_INTEGER_FORMATS[vr])
            if len(raw) % size:
                return None
            numbers = struct.unpack(f"<{len(raw) // size}{_INTEGER_FORMATS[vr]}", raw)
            values[tag] = "\\".join(str(number) for number in numbers)
        elif vr in _BINARY_VRS or vr not in _STRING_VRS:
            return None
        else:
            text = _decode_text(element.value, encoding)
            values[tag] = text if vr in _TEXT_VRS else text.lstrip(" ")
    return values


def _decode_text(raw: bytes, encoding: str) -> str:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.rstrip(" \x00")


def _parsed(
    values: dict[int, str], transfer_syntax: str, pixel_data_offset: int | None
) -> ParsedInstance:
    patient_id = values.get(_PATIENT_ID, "")
    study_uid = values.get(_STUDY_UID, "")
    series_uid = values.get(_SERIES_UID, "")
    sop_uid = values.get(_SOP_INSTANCE_UID, "")
    if not (study_uid and series_uid and sop_uid):
        raise BadFileFormat(
            "Missing StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID in the DICOM file"
        )
    main_tags = {
        level: {name: values[tag] for tag, name in MAIN_TAGS[level] if tag in values}
        for level in Level
    }
    sop_class = values.get(_SOP_CLASS_UID, "")
    return ParsedInstance(
        ids=ResourceIds.compute(patient_id, study_uid, series_uid, sop_uid),
        main_tags=main_tags,
        transfer_syntax=transfer_syntax,
        sop_class_uid=sop_class,
        patient_id=patient_id,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_instance_uid=sop_uid,
        index_in_series=_first_int(values.get(_INSTANCE_NUMBER), values.get(_IMAGE_INDEX)),
        pixel_data_offset=pixel_data_offset,
    )


def _value(dataset: pydicom.Dataset, tag: int, encoding: str | None) -> str | None:
    if tag not in dataset:
        return None
    if encoding is not None:
        decoded = _decode_raw(dataset, tag, encoding)
        if decoded is not None:
            return decoded
    try:
        element = dataset[tag]
    except Exception:  # a malformed value must not reject the whole file
        return None
    return _to_text(element.value)


def _decode_raw(dataset: pydicom.Dataset, tag: int, encoding: str) -> str | None:
    raw = dataset._dict.get(BaseTag(tag))  # the raw element, not yet converted by pydicom
    if not isinstance(raw, RawDataElement) or raw.value is None:
        return None
    vr = raw.VR or vr_of(tag)
    if vr is None or vr in _BINARY_VRS:
        return None
    text = _decode_text(raw.value, encoding)
    return text if vr in _TEXT_VRS else text.lstrip(" ")


def _to_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return "\\".join(_to_text(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("latin-1").rstrip(" \x00")
    return str(value).strip(" \x00")


def _first_int(*candidates: str | None) -> int | None:
    for text in candidates:
        if text:
            try:
                return int(text.split("\\")[0].strip())
            except ValueError:
                continue
    return None
