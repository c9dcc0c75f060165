"""DICOM values from Orthanc-style JSON, and DICOM files in and out (pydicom).

What modification, anonymization and ``/tools/create-dicom`` share: the identifier tags and the
patient/study/series module tag sets, the private ``Dictionary`` option, building data elements
from JSON values (strings, lists of objects for sequences, data URIs for binary values), reading
and writing Part 10 files, and transcoding between the syntaxes pydicom handles without plugins.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID

from obelisk.core.levels import Level
from obelisk.core.tags import format_tag, parse_tag, vr_of
from obelisk.errors import BadFileFormat, BadRequest, ErrorCode, ObeliskError, ParameterOutOfRange
from obelisk.services.transcoding import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    NotAcceptable,
    convert,
)

if TYPE_CHECKING:
    pass


PATIENT_ID = 0x00100020
PATIENT_NAME = 0x00100010
STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E
SOP_UID = 0x00080018
SOP_CLASS = 0x00080016
DEIDENTIFICATION_METHOD = 0x00120063
PATIENT_IDENTITY_REMOVED = 0x00120062
IDENTIFIERS = {PATIENT_ID: Level.PATIENT, STUDY_UID: Level.STUDY, SERIES_UID: Level.SERIES,
               SOP_UID: Level.INSTANCE}  # fmt: skip


def _tag_set(text: str) -> frozenset[int]:
    return frozenset(int(word, 16) for word in text.split())


#: Patient Module and General Study Module attributes (what split/merge and create-dicom treat as
#: belonging to the patient and the study), and the General Series Module.
PATIENT_MODULE = _tag_set(
    """
00100010 00100020 00100021 00100022 00100024 00100030 00100032 00100040 00100200
00100201 00100212 00100213 00100214 00100215 00100216 00100217 00100218 00100219
00101000 00101001 00101002 00102160 00102201 00102203 00102292 00102293 00102294
00102295 00102296 00102297 00102298 00102299 00104000 00120062 00120063 00120064
"""
)
STUDY_MODULE = _tag_set(
    """
0020000D 00080020 00080030 00080090 00080096 00200010 00080050 00080051 00081030
00081032 00081048 00081049 00081060 00081062 00081110 00321034 00401012 00321060
00321064 00321066 00321067 00321070 00080080 00080081 00321032 00321033
"""
)
SERIES_MODULE = _tag_set(
    """
00080060 0020000E 00200011 00200060 00180015 00080021 00080031 00081050 00081052
00181030 0008103E 0008103F 00081070 00081072 00081111 00181000 00080070 00081010
00081040 00181400 00400244 00400245 00400253 00400254 00400260 00400275 00400280
00102210 00280108 00280109
"""
)

UNCOMPRESSED_SYNTAXES = {
    "1.2.840.10008.1.2": (True, True),  # implicit VR little endian
    "1.2.840.10008.1.2.1": (False, True),  # explicit VR little endian
    "1.2.840.10008.1.2.1.99": (False, True),  # deflated explicit VR little endian
}
RLE_LOSSLESS = "1.2.840.10008.1.2.5"


# -- values ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PrivateDictionary:
    """Private tags declared in the ``Dictionary`` option: ``{"gggg,eeee": [VR, Name, min, max,
    PrivateCreator]}``."""

    entries: dict[int, tuple[str, str, str]]  # tag → (vr, name, creator)

    @classmethod
    def from_settings(cls, raw: dict[str, Any]) -> PrivateDictionary:
        entries: dict[int, tuple[str, str, str]] = {}
        for key, spec in raw.items():
            if not isinstance(spec, list) or len(spec) < 2:
                continue
            try:
                tag = parse_tag(key)
            except ValueError:
                continue
            creator = str(spec[4]) if len(spec) >= 5 else ""
            entries[tag] = (str(spec[0]), str(spec[1]), creator)
        return cls(entries)

    def tag_of(self, name: str) -> int | None:
        for tag, (_, entry_name, _) in self.entries.items():
            if entry_name == name:
                return tag
        return None

    def lookup(self, tag: int) -> tuple[str, str, str] | None:
        if tag in self.entries:
            return self.entries[tag]
        # declared as gggg,10ee but used in another private block (gggg,xxee)
        group, element = tag >> 16, tag & 0xFFFF
        for known, entry in self.entries.items():
            if known >> 16 == group and (known & 0xFF) == (element & 0xFF):
                return entry
        return None


def resolve_tag(name: str, dictionary: PrivateDictionary | None = None) -> int:
    try:
        return parse_tag(name)
    except ValueError:
        found = dictionary.tag_of(name) if dictionary else None
        if found is None:
            raise BadRequest(f"Unknown DICOM tag: {name}") from None
        return found


def decode_data_uri(text: str) -> tuple[str, bytes] | None:
    """``data:application/pdf;base64,...`` → (mime type, bytes); ``None`` when not a data URI."""
    if not text.startswith("data:") or "," not in text:
        return None
    header, _, payload = text.partition(",")
    mime = header[5:].split(";")[0]
    if header.endswith(";base64"):
        try:
            return mime, base64.b64decode(payload, validate=False)
        except ValueError as exc:
            raise BadRequest("Badly encoded data URI") from exc
    return mime, payload.encode("latin-1")


def build_element(
    tag: int,
    value: Any,
    *,
    dictionary: PrivateDictionary | None = None,
    decode_binary: bool = True,
) -> DataElement:
    """A data element from Orthanc's JSON value: a string, a list of objects (sequence) or null."""
    vr = vr_of(tag)
    if (tag >> 16) % 2 == 1:  # private
        entry = dictionary.lookup(tag) if dictionary else None
        vr = entry[0] if entry else "LO"
    if vr is None:
        vr = "UN"
    if vr.startswith(("US or", "OB or")):
        vr = vr.split(" or ")[0]
    if isinstance(value, list):
        if vr != "SQ":
            raise BadRequest(f"Tag {format_tag(tag)} is not a sequence")
        items = DicomSequence([build_dataset(item, dictionary) for item in value])
        return DataElement(tag, "SQ", items)
    if vr == "SQ":
        if value in (None, ""):
            return DataElement(tag, "SQ", DicomSequence([]))
        raise BadRequest(f"Tag {format_tag(tag)} is a sequence: give a list of objects")
    if value is None:
        return DataElement(tag, vr, None)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ObeliskError(code=ErrorCode.CreateDicomNotString, details=format_tag(tag))
    text = str(value)
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        decoded = decode_data_uri(text) if decode_binary else None
        raw = decoded[1] if decoded else text.encode("latin-1", "replace")
        if len(raw) % 2:
            raw += b"\0"
        return DataElement(tag, vr, raw)
    if not text:
        return DataElement(tag, vr, None)
    parts = text.split("\\")
    try:
        if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
            numbers: list[Any] = [int(p) for p in parts]
            return DataElement(tag, vr, numbers[0] if len(numbers) == 1 else numbers)
        if vr in ("FL", "FD"):
            numbers = [float(p) for p in parts]
            return DataElement(tag, vr, numbers[0] if len(numbers) == 1 else numbers)
    except ValueError as exc:
        raise BadRequest(f"Bad value for tag {format_tag(tag)} ({vr}): {text}") from exc
    if vr == "AT":
        return DataElement(tag, vr, [parse_tag(p) for p in parts])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if vr in ("LT", "ST", "UT", "UR"):
            return DataElement(tag, vr, text)
        return DataElement(tag, vr, parts[0] if len(parts) == 1 else parts)


def build_dataset(item: Any, dictionary: PrivateDictionary | None = None) -> Dataset:
    if not isinstance(item, dict):
        raise BadRequest("Sequence items must be JSON objects")
    ds = Dataset()
    for name, value in item.items():
        tag = resolve_tag(name, dictionary)
        ds.add(build_element(tag, value, dictionary=dictionary))
    return ds


def ensure_private_creator(ds: Dataset, tag: int, creator: str) -> None:
    """Adds (gggg,00xx) = creator for a private tag (gggg,xxee) when the block has no creator."""
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2 == 0 or element < 0x1000 or not creator:
        return
    creator_tag = (group << 16) | (element >> 8)
    if creator_tag not in ds:
        ds.add(DataElement(creator_tag, "LO", creator))


def needs_unicode(values: Iterable[Any]) -> bool:
    for value in values:
        if isinstance(value, str) and not value.isascii():
            return True
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and needs_unicode(item.values()):
                    return True
    return False


# -- files -------------------------------------------------------------------------------------
def read_dataset(data: bytes) -> Dataset:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(io.BytesIO(data), force=False)
    except Exception as exc:
        raise BadFileFormat("Cannot parse the DICOM file", details=str(exc)) from exc


def encode_dataset(ds: Dataset, transcode: str | None = None) -> bytes:
    """Part 10 bytes of ``ds``, in its own transfer syntax or ``transcode``."""
    if transcode is not None:
        transcode_dataset(ds, transcode)
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def transcode_dataset(ds: Dataset, syntax: str) -> None:
    """Changes the transfer syntax of ``ds`` (SOP Instance UID kept), with the codecs of
    :func:`obelisk.services.transcoding.convert`; deflated is explicit VR little endian that
    pydicom deflates when the file is written."""
    current = str(ds.file_meta.get("TransferSyntaxUID", pydicom.uid.ExplicitVRLittleEndian))
    if current == syntax:
        return
    try:
        if syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
            convert(ds, current, EXPLICIT_VR_LITTLE_ENDIAN)
            ds.file_meta.TransferSyntaxUID = UID(syntax)
        else:
            convert(ds, current, syntax)
    except NotAcceptable as exc:
        raise ParameterOutOfRange(exc.message, details=exc.details) from exc
