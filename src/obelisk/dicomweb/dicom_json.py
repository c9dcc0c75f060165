"""DICOM JSON (PS3.18 Annex F): from the index's main-tag strings and from pydicom datasets.

Keys are ``GGGGEEEE`` in upper-case hex; each value is ``{"vr": …, "Value": [...]}``, person
names become ``{"Alphabetic": …}`` objects, numeric VRs JSON numbers, and binary values a
``BulkDataURI`` (large ones) or ``InlineBinary`` (base64). Empty attributes carry no ``Value``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pydicom
from pydicom.dataelem import DataElement

from obelisk.core.tags import vr_of

JsonObject = dict[str, Any]
#: Builds the BulkDataURI of a binary value from its tag path (tag, item index, tag, …).
BulkUri = Callable[[tuple[int, ...]], str]

_INTEGER_VRS = {"IS", "SL", "SS", "SV", "UL", "US", "UV"}
_FLOAT_VRS = {"DS", "FL", "FD"}
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
_UNSPLIT_VRS = {"LT", "ST", "UT", "UR"}  # text VRs where a backslash is an ordinary character
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
#: Binary values up to this size are written inline (base64) rather than as a BulkDataURI.
INLINE_BINARY_LIMIT = 1024
PIXEL_DATA = 0x7FE00010


def tag_key(tag: int) -> str:
    return f"{tag:08X}"


def attribute(vr: str, values: list[Any] | None) -> JsonObject:
    entry: JsonObject = {"vr": vr}
    if values:
        entry["Value"] = values
    return entry


def person_name(text: str) -> JsonObject:
    groups = text.split("=")
    return {name: value for name, value in zip(_PN_GROUPS, groups, strict=False) if value}


def _number(text: str, vr: str) -> int | float | str:
    text = text.strip()
    try:
        if vr in _INTEGER_VRS:
            return int(text)
        number = float(text)
    except ValueError:
        return text  # a malformed value is shown as written rather than dropped
    return int(number) if vr == "DS" and number.is_integer() and "." not in text else number


def from_text(tag: int, text: str | None, vr: str | None = None) -> JsonObject:
    """An attribute from Orthanc's string form of a value (multi-values joined with ``\\``)."""
    vr = vr or vr_of(tag) or "UN"
    if vr in ("US or SS", "US or OW", "US or SS or OW"):
        vr = "US"
    if text is None or text == "":
        return attribute(vr, None)
    items = [text] if vr in _UNSPLIT_VRS else text.split("\\")
    if vr == "PN":
        return attribute(vr, [person_name(item) for item in items])
    if vr in _INTEGER_VRS or vr in _FLOAT_VRS:
        return attribute(vr, [_number(item, vr) for item in items if item.strip()])
    if vr in _BINARY_VRS:
        return attribute(vr, None)
    return attribute(
        vr, [item.rstrip(" ") if vr != "UI" else item.rstrip("\x00") for item in items]
    )


def dataset_json(
    dataset: pydicom.Dataset, bulk_uri: BulkUri, path: tuple[int, ...] = ()
) -> JsonObject:
    """The whole dataset (file meta excluded), binary values above the limit as BulkDataURI."""
    result: JsonObject = {}
    for element in dataset:
        tag = int(element.tag)
        if tag & 0xFFFF0000 == 0x00020000:
            continue
        try:
            result[tag_key(tag)] = element_json(dataset, element, bulk_uri, (*path, tag))
        except Exception:  # an undecodable value: keep the attribute, without its value
            result[tag_key(tag)] = attribute(_resolved_vr(dataset, element), None)
    return result


def element_json(
    dataset: pydicom.Dataset, element: DataElement, bulk_uri: BulkUri, path: tuple[int, ...]
) -> JsonObject:
    vr = _resolved_vr(dataset, element)
    value = element.value
    if vr == "SQ":
        items = [
            dataset_json(item, bulk_uri, (*path, index)) for index, item in enumerate(value or [])
        ]
        return attribute(vr, items)
    if vr in _BINARY_VRS:
        if value is None or len(value) == 0:
            return attribute(vr, None)
        if len(value) > INLINE_BINARY_LIMIT or path[-1] == PIXEL_DATA:
            return {"vr": vr, "BulkDataURI": bulk_uri(path)}
        return {"vr": vr, "InlineBinary": base64.b64encode(bytes(value)).decode("ascii")}
    if value is None or value == "":
        return attribute(vr, None)
    values = list(value) if element.VM > 1 or isinstance(value, list) else [value]
    if vr == "PN":
        return attribute(vr, [person_name(str(v)) for v in values])
    if vr == "AT":
        return attribute(vr, [tag_key(int(v)) for v in values])
    if vr in _INTEGER_VRS:
        return attribute(vr, [int(v) for v in values])
    if vr in _FLOAT_VRS:
        return attribute(vr, [_number(str(v), vr) if vr == "DS" else float(v) for v in values])
    if vr in _UNSPLIT_VRS:
        return attribute(vr, [str(value)])
    return attribute(vr, [str(v) for v in values])


def _resolved_vr(dataset: pydicom.Dataset, element: DataElement) -> str:
    vr = str(element.VR)
    if " or " not in vr:
        return vr
    if vr == "US or SS":
        return "SS" if dataset.get("PixelRepresentation", 0) == 1 else "US"
    if isinstance(element.value, bytes):
        return "OW" if "OW" in vr else "OB"
    return vr.split(" or ")[0]
