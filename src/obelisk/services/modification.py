"""Modifying, anonymizing, splitting and merging resources, as Orthanc 1.10.1 does.

A :class:`Modification` is the parsed request (Orthanc's ``DicomModification``): tags to clear,
remove or replace, identifiers to map to new UIDs, private tags to drop.
:meth:`Modification.apply` changes one pydicom dataset in place. New UIDs are *derived* from a
random per-job seed and the original value (``2.25.<128 bits of SHA-256>``), so that every instance
of a resource gets the same new StudyInstanceUID, and a job resumed after a crash regenerates
exactly the same UIDs: the UID map never needs to be persisted beyond its seed.

The jobs (``ResourceModification``, ``SplitStudy``, ``MergeStudy``) are step machines over a list of
instance IDs (Orthanc's ``SetOfInstancesJob`` + ``CleaningInstancesJob``): each step stores a few
modified copies through the ingest service, and the trailing step deletes the sources unless
``KeepSource``. Their snapshot is the request, the seed, the position and the outputs found so far.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import threading
import time
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID

from obelisk.core.changes import MetadataType
from obelisk.core.identifiers import ResourceIds
from obelisk.core.levels import Level
from obelisk.core.tags import format_tag, parse_tag, vr_of
from obelisk.errors import BadFileFormat, BadRequest, ErrorCode, ObeliskError, ParameterOutOfRange
from obelisk.jobs.model import JobContext, JobOutput, StepResult, StopReason
from obelisk.services.deidentification import DEFAULT_VERSION, METHODS, PROFILES
from obelisk.services.ingest import Origin, StoreStatus

if TYPE_CHECKING:
    from obelisk.services.context import Services

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
_REFERENCED_SOP_INSTANCE_UID = 0x00081155
_RT_REFERENCED_STUDY_SEQUENCE = 0x30060012
_REFERENCED_FRAME_OF_REFERENCE_SEQUENCE = 0x30060010


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


# -- UIDs --------------------------------------------------------------------------------------
def derived_uid(seed: str, level: str, original: str) -> str:
    """A ``2.25`` UID derived from the job seed: same input, same UID, and unguessable."""
    digest = hashlib.sha256(f"{seed}|{level}|{original}".encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def derived_uuid(seed: str, original: str) -> str:
    digest = hashlib.sha256(f"{seed}|Patient|{original}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


# -- the modification --------------------------------------------------------------------------
@dataclass
class Modification:
    """Orthanc's DicomModification, as plain data (JSON-serialisable through :meth:`to_json`)."""

    level: Level = Level.INSTANCE
    is_anonymization: bool = False
    removals: set[int] = field(default_factory=set)
    clearings: set[int] = field(default_factory=set)
    uids: set[int] = field(default_factory=set)
    replacements: dict[int, Any] = field(default_factory=dict)
    removed_ranges: list[tuple[int, int, int, int]] = field(default_factory=list)
    remove_private_tags: bool = False
    private_tags_to_keep: set[int] = field(default_factory=set)
    keep_study_uid: bool = False
    keep_series_uid: bool = False
    keep_sop_uid: bool = False
    allow_manual_identifiers: bool = True
    private_creator: str = ""
    transcode: str | None = None
    seed: str = field(default_factory=lambda: secrets.token_hex(16))

    # Orthanc's Keep / Remove / Clear / Replace with their side effects
    def keep(self, tag: int) -> None:
        self.removals.discard(tag)
        self.clearings.discard(tag)
        self.uids.discard(tag)
        self.replacements.pop(tag, None)
        if tag == STUDY_UID:
            self.keep_study_uid = True
        elif tag == SERIES_UID:
            self.keep_series_uid = True
        elif tag == SOP_UID:
            self.keep_sop_uid = True
        elif (tag >> 16) % 2 == 1:
            self.private_tags_to_keep.add(tag)
        self._not_orthanc_anonymization()

    def remove(self, tag: int) -> None:
        self.removals.add(tag)
        self.clearings.discard(tag)
        self.uids.discard(tag)
        self.replacements.pop(tag, None)
        self.private_tags_to_keep.discard(tag)
        self._not_orthanc_anonymization()

    def replace(self, tag: int, value: Any, *, safe_for_anonymization: bool = False) -> None:
        self.clearings.discard(tag)
        self.removals.discard(tag)
        self.uids.discard(tag)
        self.private_tags_to_keep.discard(tag)
        self.replacements[tag] = value
        if not safe_for_anonymization:
            self._not_orthanc_anonymization()

    def _not_orthanc_anonymization(self) -> None:
        if self.replacements.get(DEIDENTIFICATION_METHOD) in METHODS.values():
            del self.replacements[DEIDENTIFICATION_METHOD]

    def is_removed(self, tag: int) -> bool:
        if tag in self.removals:
            return True
        group, element = tag >> 16, tag & 0xFFFF
        return any(
            g0 <= group <= g1 and e0 <= element <= e1 for g0, g1, e0, e1 in self.removed_ranges
        )

    def _manually_modified(self, tag: int) -> bool:
        return tag in self.clearings or self.is_removed(tag) or tag in self.replacements

    # -- checks and application --------------------------------------------------------------
    def check(self) -> None:
        """Orthanc's sanity checks on the identifiers, by level (all 400 Bad Request)."""
        if any(self.is_removed(t) for t in IDENTIFIERS):
            raise BadRequest("The DICOM identifiers (PatientID and the UIDs) cannot be removed")
        patient_id_changed = PATIENT_ID in self.replacements or PATIENT_ID in self.uids
        level = self.level
        names = {STUDY_UID: "StudyInstanceUID", SERIES_UID: "SeriesInstanceUID",
                 SOP_UID: "SopInstanceUID"}  # fmt: skip
        what = {Level.PATIENT: "a patient", Level.STUDY: "a study", Level.SERIES: "a series",
                Level.INSTANCE: "an instance"}[level]  # fmt: skip
        if level is Level.PATIENT and not patient_id_changed:
            raise BadRequest("When modifying a patient, her PatientID is required to be modified")
        if level > Level.PATIENT and patient_id_changed:
            raise BadRequest(
                f"When modifying {what}, the parent PatientID cannot be manually modified"
            )
        for tag, tag_level in ((STUDY_UID, Level.STUDY), (SERIES_UID, Level.SERIES)):
            if level > tag_level and tag in self.replacements:
                raise BadRequest(
                    f"When modifying {what}, the parent {names[tag]} cannot be manually modified"
                )
        if not self.allow_manual_identifiers:
            for tag, tag_level in ((STUDY_UID, Level.STUDY), (SERIES_UID, Level.SERIES),
                                   (SOP_UID, Level.INSTANCE)):  # fmt: skip
                if level < tag_level and tag in self.replacements:
                    raise BadRequest(
                        f"When modifying {what}, the {names[tag]} cannot be manually modified"
                    )

    def map_identifier(self, original: str, level: Level) -> str:
        stripped = original.strip(" \x00")
        if level is Level.PATIENT:
            return derived_uuid(self.seed, stripped)
        return derived_uid(self.seed, level.title, stripped)

    def apply(self, ds: Dataset, dictionary: PrivateDictionary | None = None) -> None:
        """Modifies ``ds`` in place (Orthanc's ``DicomModification::Apply``)."""
        self.check()
        if self.remove_private_tags:
            _remove_private_tags(ds, self.private_tags_to_keep)
        for tag in self.clearings:
            if tag in ds:
                element = ds[tag]
                ds[tag] = DataElement(
                    tag, element.VR, DicomSequence([]) if element.VR == "SQ" else None
                )
        for tag in list(ds.keys()):
            if self.is_removed(int(tag)):
                del ds[tag]
        for tag, value in self.replacements.items():
            ds[tag] = build_element(tag, value, dictionary=dictionary)
            ensure_private_creator(ds, tag, self._creator_for(tag, dictionary))
        for level, tag, kept in (
            (Level.STUDY, STUDY_UID, self.keep_study_uid),
            (Level.SERIES, SERIES_UID, self.keep_series_uid),
            (Level.INSTANCE, SOP_UID, self.keep_sop_uid),
        ):
            if self.level <= level and tag not in self.replacements and not kept:
                original = str(ds.get(tag).value or "") if tag in ds else ""
                ds[tag] = DataElement(tag, "UI", self.map_identifier(original, level))
        if self.is_anonymization:
            self._update_relationships(ds, top_level=True)
        if "SOPInstanceUID" in ds:
            meta = getattr(ds, "file_meta", None) or FileMetaDataset()
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            if "SOPClassUID" in ds:
                meta.MediaStorageSOPClassUID = ds.SOPClassUID
            ds.file_meta = meta

    def _creator_for(self, tag: int, dictionary: PrivateDictionary | None) -> str:
        if self.private_creator:
            return self.private_creator
        entry = dictionary.lookup(tag) if dictionary else None
        return entry[2] if entry else ""

    def _update_relationships(
        self, ds: Dataset, *, top_level: bool, parents: tuple[int, ...] = ()
    ) -> None:
        for element in list(ds):
            tag = int(element.tag)
            if top_level:
                if element.VR == "SQ":
                    for item in element.value:
                        self._update_relationships(item, top_level=False, parents=(tag,))
                    continue
                if tag in self.uids and not self._manually_modified(tag) and element.value:
                    top = Level.PATIENT if tag in (PATIENT_ID, PATIENT_NAME) else Level.INSTANCE
                    ds[tag] = DataElement(tag, element.VR, self._map_value(element, top))
                continue
            if self.remove_private_tags and element.tag.is_private:
                del ds[tag]
                continue
            if self.is_removed(tag):
                del ds[tag]
                continue
            if tag in self.clearings:
                ds[tag] = DataElement(
                    tag, element.VR, DicomSequence([]) if element.VR == "SQ" else None
                )
                continue
            if element.VR == "SQ":
                for item in element.value:
                    self._update_relationships(item, top_level=False, parents=(*parents, tag))
                continue
            if not element.value:
                continue
            level: Level | None = None
            if tag in (STUDY_UID, SERIES_UID, SOP_UID):
                level = IDENTIFIERS[tag]
            elif tag in self.uids:
                level = Level.PATIENT if tag in (PATIENT_ID, PATIENT_NAME) else Level.INSTANCE
                if (
                    parents
                    == (_REFERENCED_FRAME_OF_REFERENCE_SEQUENCE, _RT_REFERENCED_STUDY_SEQUENCE)
                    and tag == _REFERENCED_SOP_INSTANCE_UID
                ):
                    level = Level.STUDY  # RT-STRUCT quirk, as Orthanc
            if level is not None:
                ds[tag] = DataElement(tag, element.VR, self._map_value(element, level))

    def _map_value(self, element: DataElement, level: Level) -> Any:
        value = element.value
        if isinstance(value, list | pydicom.multival.MultiValue):
            return [self.map_identifier(str(v), level) for v in value]
        return self.map_identifier(str(value), level)

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "Level": self.level.title,
            "IsAnonymization": self.is_anonymization,
            "Removals": sorted(format_tag(t) for t in self.removals),
            "Clearings": sorted(format_tag(t) for t in self.clearings),
            "Uids": sorted(format_tag(t) for t in self.uids),
            "Replacements": {format_tag(t): v for t, v in self.replacements.items()},
            "RemovedRanges": [list(r) for r in self.removed_ranges],
            "RemovePrivateTags": self.remove_private_tags,
            "PrivateTagsToKeep": sorted(format_tag(t) for t in self.private_tags_to_keep),
            "KeepStudyInstanceUID": self.keep_study_uid,
            "KeepSeriesInstanceUID": self.keep_series_uid,
            "KeepSOPInstanceUID": self.keep_sop_uid,
            "AllowManualIdentifiers": self.allow_manual_identifiers,
            "PrivateCreator": self.private_creator,
            "Transcode": self.transcode,
            "Seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Modification:
        def tags(key: str) -> set[int]:
            return {parse_tag(t) for t in data.get(key, [])}

        return cls(
            level=Level.parse(data["Level"]),
            is_anonymization=bool(data["IsAnonymization"]),
            removals=tags("Removals"),
            clearings=tags("Clearings"),
            uids=tags("Uids"),
            replacements={parse_tag(t): v for t, v in data.get("Replacements", {}).items()},
            removed_ranges=[
                (int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in data.get("RemovedRanges", [])
            ],
            remove_private_tags=bool(data.get("RemovePrivateTags")),
            private_tags_to_keep=tags("PrivateTagsToKeep"),
            keep_study_uid=bool(data.get("KeepStudyInstanceUID")),
            keep_series_uid=bool(data.get("KeepSeriesInstanceUID")),
            keep_sop_uid=bool(data.get("KeepSOPInstanceUID")),
            allow_manual_identifiers=bool(data.get("AllowManualIdentifiers", True)),
            private_creator=str(data.get("PrivateCreator", "")),
            transcode=data.get("Transcode"),
            seed=str(data["Seed"]),
        )


def _remove_private_tags(ds: Dataset, keep: set[int]) -> None:
    kept_creators = {(t >> 16 << 16) | ((t & 0xFFFF) >> 8) for t in keep}
    for element in list(ds):
        tag = int(element.tag)
        if element.tag.is_private and tag not in keep and tag not in kept_creators:
            del ds[tag]


# -- request parsing ---------------------------------------------------------------------------
def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise BadFileFormat(f'Member "{key}" should be a Boolean value')
    return value


def _tag_list(body: dict[str, Any], key: str, force: bool, verb: str,
              dictionary: PrivateDictionary | None) -> list[int]:  # fmt: skip
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f'"{key}" must be a list of tags')
    result = []
    for name in value:
        if "[" in name or "." in name:
            raise ParameterOutOfRange(f"Paths into sequences are not supported yet: {name}")
        tag = resolve_tag(name, dictionary)
        if tag in IDENTIFIERS and not force:
            raise BadRequest(
                f'Marking tag "{name}" as to be {verb} requires the "Force" option '
                "to be set to true"
            )
        result.append(tag)
    return result


def _replacements(body: dict[str, Any], force: bool,
                  dictionary: PrivateDictionary | None) -> dict[int, Any]:  # fmt: skip
    value = body.get("Replace", {})
    if not isinstance(value, dict):
        raise BadRequest('"Replace" must be a JSON object')
    result: dict[int, Any] = {}
    for name, replacement in value.items():
        if "[" in name or "." in name:
            raise ParameterOutOfRange(f"Paths into sequences are not supported yet: {name}")
        tag = resolve_tag(name, dictionary)
        if tag in IDENTIFIERS and not force:
            raise BadRequest(
                f'Marking tag "{name}" as to be replaced requires the "Force" option '
                "to be set to true"
            )
        result[tag] = replacement
    return result


def _transcode_option(body: dict[str, Any]) -> str | None:
    value = body.get("Transcode")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest('"Transcode" must be a transfer syntax UID')
    if value not in UNCOMPRESSED_SYNTAXES and value != RLE_LOSSLESS:
        raise ParameterOutOfRange(f"Transcoding to {value} is not supported (only uncompressed "
                                  "syntaxes and RLE Lossless)")  # fmt: skip
    return value


def parse_modify_request(
    body: dict[str, Any], level: Level, dictionary: PrivateDictionary | None = None
) -> Modification:
    force = _bool(body, "Force", False)
    modification = Modification(level=level, allow_manual_identifiers=force)
    if _bool(body, "RemovePrivateTags", False):
        modification.remove_private_tags = True
    for tag in _tag_list(body, "Remove", force, "removed", dictionary):
        modification.remove(tag)
    for tag, value in _replacements(body, force, dictionary).items():
        modification.replace(tag, value)
    for tag in _tag_list(body, "Keep", force, "kept", dictionary):
        modification.keep(tag)
    if "PrivateCreator" in body:
        modification.private_creator = str(body["PrivateCreator"])
    modification.transcode = _transcode_option(body)
    modification.check()
    return modification


def parse_anonymize_request(
    body: dict[str, Any], patient_name: str, dictionary: PrivateDictionary | None = None
) -> Modification:
    """``patient_name``: what PatientName becomes unless the request replaces or keeps it."""
    force = _bool(body, "Force", False)
    version = body.get("DicomVersion", DEFAULT_VERSION)
    if not isinstance(version, str):
        raise BadFileFormat('"DicomVersion" must be a string')
    if version not in PROFILES:
        raise ParameterOutOfRange(f"Unknown DICOM version: {version}")
    profile = PROFILES[version]
    modification = Modification(
        level=Level.PATIENT,
        is_anonymization=True,
        removals=set(profile.removals),
        clearings=set(profile.clearings),
        uids=set(profile.uids) | {PATIENT_ID, PATIENT_NAME},
        removed_ranges=list(profile.removed_ranges),
        remove_private_tags=True,
        allow_manual_identifiers=True,
    )
    modification.replacements[DEIDENTIFICATION_METHOD] = profile.method
    modification.replacements[PATIENT_IDENTITY_REMOVED] = "YES"
    if _bool(body, "KeepPrivateTags", False):
        modification.remove_private_tags = False
        modification._not_orthanc_anonymization()
    for tag in _tag_list(body, "Remove", force, "removed", dictionary):
        modification.remove(tag)
    for tag, value in _replacements(body, force, dictionary).items():
        modification.replace(tag, value)
    for tag in _tag_list(body, "Keep", force, "kept", dictionary):
        modification.keep(tag)
    if PATIENT_NAME in modification.uids:  # neither replaced nor kept: "Anonymized<n>"
        modification.replace(PATIENT_NAME, patient_name, safe_for_anonymization=True)
    if "PrivateCreator" in body:
        modification.private_creator = str(body["PrivateCreator"])
    modification.transcode = _transcode_option(body)
    modification.check()
    return modification


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
    """Changes the transfer syntax of ``ds``: uncompressed syntaxes and RLE Lossless, both ways."""
    current = str(ds.file_meta.get("TransferSyntaxUID", pydicom.uid.ExplicitVRLittleEndian))
    if current == syntax:
        return
    try:
        if current not in UNCOMPRESSED_SYNTAXES:
            if current != RLE_LOSSLESS:
                raise ParameterOutOfRange(f"Cannot transcode from {current} without a codec")
            ds.decompress()
        if syntax == RLE_LOSSLESS:
            ds.compress(RLE_LOSSLESS)
        else:
            ds.file_meta.TransferSyntaxUID = UID(syntax)
    except ObeliskError:
        raise
    except Exception as exc:
        raise ParameterOutOfRange(f"Cannot transcode to {syntax}", details=str(exc)) from exc


def modify_bytes(data: bytes, modification: Modification,
                 dictionary: PrivateDictionary | None = None) -> bytes:  # fmt: skip
    ds = read_dataset(data)
    modification.apply(ds, dictionary)
    return encode_dataset(ds, modification.transcode)


# -- the service ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OriginInfo:
    """The origin recorded on new instances (Orthanc: the REST call that created the job)."""

    kind: str = "RestApi"
    remote_ip: str = ""
    http_username: str = ""

    def to_origin(self) -> Origin:
        return Origin(kind=self.kind, remote_ip=self.remote_ip, http_username=self.http_username)

    def to_json(self) -> dict[str, str]:
        return {"Kind": self.kind, "RemoteIp": self.remote_ip, "HttpUsername": self.http_username}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OriginInfo:
        return cls(
            data.get("Kind", "RestApi"), data.get("RemoteIp", ""), data.get("HttpUsername", "")
        )


class ModificationService:
    """Builds modification/split/merge jobs and modifies single instances."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.dictionary = PrivateDictionary.from_settings(services.settings["Dictionary"] or {})
        self._sequence_lock = threading.Lock()

    # -- single instances (no storage) ---------------------------------------------------------
    def modify_instance(self, public_id: str, body: dict[str, Any], *, anonymize: bool) -> bytes:
        data = self.services.resources.dicom_bytes(public_id)
        if anonymize:
            modification = parse_anonymize_request(body, self.next_patient_name(), self.dictionary)
        else:
            modification = parse_modify_request(body, Level.INSTANCE, self.dictionary)
        return modify_bytes(data, modification, self.dictionary)

    def next_patient_name(self) -> str:
        """``Anonymized<n>`` with a server-wide counter (global property, as Orthanc)."""
        index = self.services.index
        with self._sequence_lock:
            current = int(index.get_global("AnonymizationSequence") or "0") + 1
            with index.write() as writer:
                writer.set_global("AnonymizationSequence", str(current))
        return f"Anonymized{current}"

    # -- jobs --------------------------------------------------------------------------------
    def modification_job(
        self, level: Level, public_id: str, body: dict[str, Any], *,
        anonymize: bool, origin: OriginInfo,
    ) -> ResourceModificationJob:  # fmt: skip
        self.services.resources.get(level, public_id)
        if anonymize:
            modification = parse_anonymize_request(body, self.next_patient_name(), self.dictionary)
        else:
            modification = parse_modify_request(body, level, self.dictionary)
        state = {
            **_common_state(body, keep_source_default=True),
            "Modification": modification.to_json(),
            "Level": level.title,
            "Resource": public_id,
            "Instances": self._instances(level, public_id),
            "Origin": origin.to_json(),
        }
        return ResourceModificationJob(self.services, state)

    def split_job(self, study_id: str, body: dict[str, Any], origin: OriginInfo) -> SplitStudyJob:
        study = self.services.resources.get(Level.STUDY, study_id)
        instances: list[str] = []
        for key, level in (("Series", Level.SERIES), ("Instances", Level.INSTANCE)):
            values = body.get(key, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise BadRequest(f'"{key}" must be a list of Orthanc identifiers')
            for value in values:
                resource = self.services.resources.get(level, value)
                if self._study_of(resource.level, resource.public_id) != study_id:
                    raise BadRequest(f"{level.title} {value} does not belong to study {study_id}")
                instances.extend(self._instances(level, value))
        if not instances:
            raise BadRequest("No series nor instance to split")
        replacements = _replacements(body, True, self.dictionary)
        removals = _tag_list(body, "Remove", True, "removed", self.dictionary)
        allowed = (PATIENT_MODULE | STUDY_MODULE) - {PATIENT_ID, STUDY_UID}
        for tag in [*replacements, *removals]:
            if tag not in allowed:
                raise BadRequest(
                    f"Tag {format_tag(tag)} is not part of the patient or study modules, or is an "
                    "identifier: it cannot be changed by a split"
                )
        seed = secrets.token_hex(16)
        target_uid = derived_uid(seed, "Study", study.main_tags.get("StudyInstanceUID", ""))
        patient_id = (study.patient_tags or {}).get("PatientID", "")
        state = {
            **_common_state(body, keep_source_default=False),
            "Seed": seed,
            "TargetStudyUID": target_uid,
            "TargetStudy": ResourceIds.compute(patient_id, target_uid, "x", "x").study,
            "Replacements": {format_tag(t): v for t, v in replacements.items()},
            "Removals": [format_tag(t) for t in removals],
            "Instances": list(dict.fromkeys(instances)),
            "Origin": origin.to_json(),
        }
        return SplitStudyJob(self.services, state)

    def merge_job(self, study_id: str, body: dict[str, Any], origin: OriginInfo) -> MergeStudyJob:
        self.services.resources.get(Level.STUDY, study_id)
        values = body.get("Resources")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadRequest('"Resources" must be a list of Orthanc identifiers')
        instances: list[str] = []
        for value in values:
            resource = self.services.resources.get_any(value)
            if resource.level is Level.PATIENT:
                raise BadRequest("Patients cannot be merged into a study")
            if self._study_of(resource.level, value) == study_id:
                raise BadRequest(f"Resource {value} already belongs to study {study_id}")
            instances.extend(self._instances(resource.level, value))
        target = self.services.resources.dataset(
            self.services.resources.any_instance(Level.STUDY, study_id), stop_before_pixels=True
        )
        module_tags = {
            f"{int(e.tag):08X}": e.to_json_dict(None, 1 << 30)
            for e in target
            if int(e.tag) in (PATIENT_MODULE | STUDY_MODULE)
        }
        state = {
            **_common_state(body, keep_source_default=False),
            "Seed": secrets.token_hex(16),
            "TargetStudy": study_id,
            "TargetTags": module_tags,
            "Instances": list(dict.fromkeys(instances)),
            "Origin": origin.to_json(),
        }
        return MergeStudyJob(self.services, state)

    def _instances(self, level: Level, public_id: str) -> list[str]:
        return [r.public_id for r in self.services.resources.instances_of(level, public_id)]

    def _study_of(self, level: Level, public_id: str) -> str | None:
        if level is Level.PATIENT:
            return None
        if level is Level.STUDY:
            return public_id
        return self.services.resources.ancestor(level, public_id, Level.STUDY).resource.public_id


def _common_state(body: dict[str, Any], *, keep_source_default: bool) -> dict[str, Any]:
    return {
        "Description": "REST API",
        "Permissive": _bool(body, "Permissive", False),
        "KeepSource": _bool(body, "KeepSource", keep_source_default),
        "Position": 0,
        "Failed": [],
        "Done": False,
    }


def set_origin_metadata(
    services: Services, new_ids: ResourceIds, source_ids: dict[Level, str], metadata_type: int
) -> None:
    """ModifiedFrom (5) / AnonymizedFrom (6) on the new resources, from ``source_ids`` by level."""
    targets = []
    for level, source in source_ids.items():
        resource = services.index.lookup(new_ids.by_level()[level], level)
        if resource is not None and resource.public_id != source:
            targets.append((resource.internal_id, source))
    if targets:
        with services.index.write() as writer:
            for internal_id, source in targets:
                writer.set_metadata(internal_id, metadata_type, source)


# -- jobs --------------------------------------------------------------------------------------
STEP_SECONDS = 0.5


class _InstancesJob:
    """A set of instances processed a few per step, then a trailing clean-up step."""

    type_name = ""

    def __init__(self, services: Services, state: dict[str, Any]) -> None:
        self.services = services
        self.state = state
        self.origin = OriginInfo.from_json(state.get("Origin", {}))

    @property
    def instances(self) -> list[str]:
        return list(self.state["Instances"])

    def step(self, context: JobContext) -> StepResult:
        state = self.state
        instances = state["Instances"]
        deadline = time.monotonic() + STEP_SECONDS
        while state["Position"] < len(instances):
            source = instances[state["Position"]]
            try:
                self.process(source)
            except ObeliskError as exc:
                if not state["Permissive"]:
                    return StepResult.failure(exc)
                context.log(f"Instance {source} failed: {exc}")
                state["Failed"].append(source)
            except Exception as exc:
                error = ObeliskError(details=f"{type(exc).__name__}: {exc}")
                if not state["Permissive"]:
                    return StepResult.failure(error)
                state["Failed"].append(source)
            state["Position"] += 1
            if time.monotonic() > deadline:
                return StepResult.cont()
        if not state["Done"]:
            if not state["KeepSource"]:
                self.delete_sources()
            state["Done"] = True
        return StepResult.success()

    def process(self, source: str) -> None:
        raise NotImplementedError

    def delete_sources(self) -> None:
        created = set(self.state.get("Created", []))
        for source in self.state["Instances"]:
            if source in created or source in self.state["Failed"]:
                continue
            if self.services.index.lookup(source, Level.INSTANCE) is not None:
                self.services.resources.delete(Level.INSTANCE, source)

    def store(self, data: bytes) -> ResourceIds:
        result = self.services.ingest.store(data, self.origin.to_origin())
        if result.status not in (StoreStatus.Success, StoreStatus.AlreadyStored):
            raise ObeliskError(code=ErrorCode.CannotStoreInstance, details=result.status.value)
        self.state.setdefault("Created", []).append(result.ids.instance)
        return result.ids

    def progress(self) -> float:
        total = len(self.state["Instances"]) + 1
        done = int(self.state["Position"]) + (1 if self.state["Done"] else 0)
        return min(1.0, done / total)

    def base_content(self) -> dict[str, Any]:
        return {
            "Description": self.state["Description"],
            "InstancesCount": len(self.state["Instances"]),
            "FailedInstancesCount": len(self.state["Failed"]),
        }

    def content(self) -> dict[str, Any]:
        return self.base_content()

    def serialize(self) -> dict[str, Any]:
        return {"Type": self.type_name, **self.state}

    def reset(self) -> None:
        self.state["Position"] = 0
        self.state["Failed"] = []
        self.state["Done"] = False
        self.state.pop("Created", None)

    def stop(self, reason: StopReason) -> None:
        return None

    def outputs(self) -> dict[str, JobOutput]:
        return {}

    def _dataset(self, source: str) -> Dataset:
        return read_dataset(self.services.resources.dicom_bytes(source))


class ResourceModificationJob(_InstancesJob):
    type_name = "ResourceModification"

    def __init__(self, services: Services, state: dict[str, Any]) -> None:
        super().__init__(services, state)
        self.modification = Modification.from_json(state["Modification"])
        self.level = Level.parse(state["Level"])
        self.dictionary = PrivateDictionary.from_settings(services.settings["Dictionary"] or {})

    def process(self, source: str) -> None:
        resources = self.services.resources
        ds = self._dataset(source)
        self.modification.apply(ds, self.dictionary)
        new_ids = self.store(encode_dataset(ds, self.modification.transcode))
        instance = resources.get(Level.INSTANCE, source)
        sources: dict[Level, str] = {Level.INSTANCE: source}
        parent = instance.parent_public_id
        for level in (Level.SERIES, Level.STUDY, Level.PATIENT):
            if parent is None:
                break
            sources[level] = parent
            parent = resources.get(level, parent).parent_public_id
        wanted = {lv: sid for lv, sid in sources.items() if lv >= self.modification.level}
        metadata = (
            MetadataType.AnonymizedFrom
            if self.modification.is_anonymization
            else MetadataType.ModifiedFrom
        )
        set_origin_metadata(self.services, new_ids, wanted, int(metadata))
        if "Output" not in self.state:
            self.state["Output"] = {
                "ID": new_ids.by_level()[self.level],
                "PatientID": new_ids.patient,
            }

    def content(self) -> dict[str, Any]:
        content = self.base_content()
        content["IsAnonymization"] = self.modification.is_anonymization
        if self.modification.transcode:
            content["Transcode"] = self.modification.transcode
        output = self.state.get("Output")
        if output is not None and self.state["Done"]:
            content.update(
                {
                    "ID": output["ID"],
                    "Path": f"/{self.level.plural}/{output['ID']}",
                    "PatientID": output["PatientID"],
                    "Type": self.level.title,
                }
            )
        return content

    def reset(self) -> None:
        super().reset()
        self.state.pop("Output", None)


class SplitStudyJob(_InstancesJob):
    type_name = "SplitStudy"

    def process(self, source: str) -> None:
        state = self.state
        ds = self._dataset(source)
        for name in state["Removals"]:
            tag = parse_tag(name)
            if tag in ds:
                del ds[tag]
        for name, value in state["Replacements"].items():
            tag = parse_tag(name)
            ds[tag] = build_element(tag, value)
        seed = state["Seed"]
        ds.StudyInstanceUID = state["TargetStudyUID"]
        ds.SeriesInstanceUID = derived_uid(seed, "Series", str(ds.get("SeriesInstanceUID", "")))
        ds.SOPInstanceUID = derived_uid(seed, "Instance", str(ds.get("SOPInstanceUID", "")))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        self.store(encode_dataset(ds))

    def content(self) -> dict[str, Any]:
        content = self.base_content()
        content["TargetStudy"] = self.state["TargetStudy"]
        content["TargetStudyUID"] = self.state["TargetStudyUID"]
        return content


class MergeStudyJob(_InstancesJob):
    type_name = "MergeStudy"

    def process(self, source: str) -> None:
        state = self.state
        ds = self._dataset(source)
        target = Dataset.from_json(dict(state["TargetTags"].items()))
        for element in list(ds):
            if int(element.tag) in (PATIENT_MODULE | STUDY_MODULE) and element.tag not in target:
                del ds[element.tag]
        for element in target:
            ds[element.tag] = element
        seed = state["Seed"]
        ds.SeriesInstanceUID = derived_uid(seed, "Series", str(ds.get("SeriesInstanceUID", "")))
        ds.SOPInstanceUID = derived_uid(seed, "Instance", str(ds.get("SOPInstanceUID", "")))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        self.store(encode_dataset(ds))

    def content(self) -> dict[str, Any]:
        content = self.base_content()
        content["TargetStudy"] = self.state["TargetStudy"]
        return content
