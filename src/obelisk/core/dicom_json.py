"""Orthanc's JSON forms of a DICOM dataset: full (``/tags``), short (``?short``), simplified.

Full form: ``{"0010,0010": {"Name": "PatientName", "Type": "String", "Value": "DOE^JOHN"}}`` where
``Type`` is ``String``, ``Sequence`` (``Value`` = list of full forms), ``Null`` (binary values and
pixel data), or ``TooLong`` (strings longer than the limit).
"""

from __future__ import annotations

from typing import Any

import pydicom
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.valuerep import IS, DSdecimal, DSfloat, PersonName

from obelisk.core.tags import format_tag, keyword

#: Orthanc's default limit for string values in ``/tags`` (longer ones are "TooLong").
MAX_STRING_LENGTH = 256
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW", "US or SS or OW"}


def element_text(element: DataElement) -> str:
    """The string Orthanc shows for an element's value (multi-values joined with ``\\``)."""
    value = element.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_scalar_text(v) for v in value)
    return _scalar_text(value)


def _scalar_text(value: Any) -> str:
    if isinstance(value, PersonName | DSfloat | DSdecimal | IS):
        return str(value)  # the text as written in the file
    if isinstance(value, bytes):
        return value.decode("latin-1").rstrip("\x00 ")
    if isinstance(value, float):
        return format(value, ".17g")  # FL/FD as Orthanc (DCMTK) prints them
    return str(value)


def _private_creator(dataset: pydicom.Dataset, tag: int) -> str | None:
    """The Private Creator value that reserves the block of a private data element."""
    group, element = tag >> 16, tag & 0xFFFF
    creator = dataset.get((group << 16) | (element >> 8))
    if creator is None or element < 0x1000:
        return None
    try:
        return element_text(creator)
    except Exception:
        return None


def full_tags(dataset: pydicom.Dataset, *, max_length: int = MAX_STRING_LENGTH) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for element in dataset:
        tag = int(element.tag)
        entry: dict[str, Any] = {"Name": keyword(tag)}
        if element.tag.is_private:
            if 0x10 <= (tag & 0xFFFF) <= 0xFF:
                entry["Name"] = "PrivateCreator"
            elif (creator := _private_creator(dataset, tag)) is not None:
                entry["PrivateCreator"] = creator
        result[format_tag(tag)] = entry
        if element.VR == "SQ":
            entry["Type"] = "Sequence"
            entry["Value"] = [full_tags(item, max_length=max_length) for item in element.value]
            continue
        if element.VR in _BINARY_VRS or tag == 0x7FE00010:
            entry["Type"], entry["Value"] = "Null", None
            continue
        try:
            text = element_text(element)
        except Exception:  # undecodable value: shown as binary, as Orthanc does
            entry["Type"], entry["Value"] = "Null", None
            continue
        if max_length and len(text) > max_length:
            entry["Type"], entry["Value"] = "TooLong", None
        else:
            entry["Type"], entry["Value"] = "String", text
    return result


def simplify(full: dict[str, Any]) -> dict[str, Any]:
    """``{"PatientName": "DOE^JOHN", …}``; sequences become lists of simplified items."""
    # As in Orthanc, tags are keyed by name: private data elements all share the name
    # "Unknown Tag & Data", so only the last one is left.
    return {entry["Name"]: _simple_value(entry, simplify) for entry in full.values()}


def shorten(full: dict[str, Any]) -> dict[str, Any]:
    """``{"0010,0010": "DOE^JOHN", …}``."""
    return {key: _simple_value(entry, shorten) for key, entry in full.items()}


def _simple_value(entry: dict[str, Any], convert: Any) -> Any:
    if entry["Type"] == "Sequence":
        return [convert(item) for item in entry["Value"]]
    if entry["Type"] == "String":
        return entry["Value"]
    return None
