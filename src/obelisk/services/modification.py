"""Modifying and anonymizing DICOM datasets, as Orthanc 1.10.1 does (the jobs that run this over
resources are in ``obelisk.services.modification_jobs``).

A :class:`Modification` is the parsed request (Orthanc's ``DicomModification``): tags to clear,
remove or replace — top-level tags, or paths into sequences (``obelisk.services.tag_paths``) —,
identifiers to map to new UIDs, private tags to drop. :meth:`Modification.apply` changes one
pydicom dataset in place. New UIDs are *derived* from a random per-job seed and the original value
(``2.25.<128 bits of SHA-256>``), so that every instance of a resource gets the same new
StudyInstanceUID, and a job resumed after a crash regenerates exactly the same UIDs: the UID map
never needs to be persisted beyond its seed.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence

from obelisk.core.levels import Level
from obelisk.core.tags import format_tag, parse_tag
from obelisk.errors import BadFileFormat, BadRequest, ParameterOutOfRange
from obelisk.services.deidentification import DEFAULT_VERSION, METHODS, PROFILES
from obelisk.services.dicom_values import (
    DEIDENTIFICATION_METHOD,
    IDENTIFIERS,
    PATIENT_ID,
    PATIENT_IDENTITY_REMOVED,
    PATIENT_NAME,
    RLE_LOSSLESS,
    SERIES_UID,
    SOP_UID,
    STUDY_UID,
    UNCOMPRESSED_SYNTAXES,
    PrivateDictionary,
    build_element,
    encode_dataset,
    ensure_private_creator,
    read_dataset,
    resolve_tag,
)
from obelisk.services.tag_paths import TagPath

_REFERENCED_SOP_INSTANCE_UID = 0x00081155
_RT_REFERENCED_STUDY_SEQUENCE = 0x30060012
_REFERENCED_FRAME_OF_REFERENCE_SEQUENCE = 0x30060010


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
    # paths into sequences (Orthanc 1.9.4+): replaced in existing items, removed, kept as is
    path_replacements: list[tuple[TagPath, Any]] = field(default_factory=list)
    path_removals: list[TagPath] = field(default_factory=list)
    path_keeps: list[TagPath] = field(default_factory=list)

    # Paths: a plain tag goes to keep/remove/replace; a path into a sequence is applied to the
    # existing items only (Orthanc's DicomPath with DicomReplaceMode_InsertIfAbsent).
    def keep_path(self, path: TagPath) -> None:
        if path.is_plain:
            self.keep(path.tag)
            return
        # The sequence survives the anonymization profile; the visitor spares the kept element.
        self.removals.discard(path.top_tag)
        self.clearings.discard(path.top_tag)
        self.path_keeps.append(path)
        self._not_orthanc_anonymization()

    def remove_path(self, path: TagPath) -> None:
        if path.is_plain:
            self.remove(path.tag)
            return
        self.path_removals.append(path)
        self._not_orthanc_anonymization()

    def replace_path(self, path: TagPath, value: Any) -> None:
        if path.is_plain:
            self.replace(path.tag, value)
            return
        self.path_replacements.append((path, value))
        self._not_orthanc_anonymization()

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
        for path, value in self.path_replacements:
            for holder in path.holders(ds):
                holder[path.tag] = build_element(path.tag, value, dictionary=dictionary)
                ensure_private_creator(holder, path.tag, self._creator_for(path.tag, dictionary))
        for path in self.path_removals:
            for holder in path.holders(ds):
                if path.tag in holder:
                    del holder[path.tag]
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
        self, ds: Dataset, *, top_level: bool, location: tuple[tuple[int, int], ...] = ()
    ) -> None:
        for element in list(ds):
            tag = int(element.tag)
            if top_level:
                if element.VR == "SQ":
                    self._visit_items(element, ((tag, 0),))
                    continue
                if tag in self.uids and not self._manually_modified(tag) and element.value:
                    top = Level.PATIENT if tag in (PATIENT_ID, PATIENT_NAME) else Level.INSTANCE
                    ds[tag] = DataElement(tag, element.VR, self._map_value(element, top))
                continue
            if self._spared(location, tag):
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
                self._visit_items(element, (*location, (tag, 0)))
                continue
            if not element.value:
                continue
            level: Level | None = None
            if tag in (STUDY_UID, SERIES_UID, SOP_UID):
                level = IDENTIFIERS[tag]
            elif tag in self.uids:
                level = Level.PATIENT if tag in (PATIENT_ID, PATIENT_NAME) else Level.INSTANCE
                parents = tuple(sequence for sequence, _ in location)
                if (
                    parents
                    == (_REFERENCED_FRAME_OF_REFERENCE_SEQUENCE, _RT_REFERENCED_STUDY_SEQUENCE)
                    and tag == _REFERENCED_SOP_INSTANCE_UID
                ):
                    level = Level.STUDY  # RT-STRUCT quirk, as Orthanc
            if level is not None:
                ds[tag] = DataElement(tag, element.VR, self._map_value(element, level))

    def _visit_items(self, element: DataElement, location: tuple[tuple[int, int], ...]) -> None:
        """Visits the items of a sequence; ``location`` ends with the sequence (item 0)."""
        *parents, (sequence, _) = location
        for index, item in enumerate(element.value):
            self._update_relationships(
                item, top_level=False, location=(*parents, (sequence, index))
            )

    def _spared(self, location: tuple[tuple[int, int], ...], tag: int) -> bool:
        """Kept or replaced through a path: the anonymization leaves the element as it is."""
        return any(p.matches(location, tag) for p in self.path_keeps) or any(
            p.matches(location, tag) for p, _ in self.path_replacements
        )

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
            "PathReplacements": [[p.format(), v] for p, v in self.path_replacements],
            "PathRemovals": [p.format() for p in self.path_removals],
            "PathKeeps": [p.format() for p in self.path_keeps],
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
            path_replacements=[
                (TagPath.parse(p, parse_tag), v) for p, v in data.get("PathReplacements", [])
            ],
            path_removals=[TagPath.parse(p, parse_tag) for p in data.get("PathRemovals", [])],
            path_keeps=[TagPath.parse(p, parse_tag) for p in data.get("PathKeeps", [])],
        )


def _remove_private_tags(ds: Dataset, keep: set[int]) -> None:
    kept_creators = {(t >> 16 << 16) | ((t & 0xFFFF) >> 8) for t in keep}
    for element in list(ds):
        tag = int(element.tag)
        if element.tag.is_private and tag not in keep and tag not in kept_creators:
            del ds[tag]


# -- request parsing ---------------------------------------------------------------------------
def bool_option(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise BadFileFormat(f'Member "{key}" should be a Boolean value')
    return value


def parse_tag_list(body: dict[str, Any], key: str, force: bool, verb: str,
                   dictionary: PrivateDictionary | None) -> list[TagPath]:  # fmt: skip
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f'"{key}" must be a list of tags')
    return [_checked_path(name, force, verb, dictionary) for name in value]


def parse_replacements(
    body: dict[str, Any], force: bool, dictionary: PrivateDictionary | None
) -> list[tuple[TagPath, Any]]:
    value = body.get("Replace", {})
    if not isinstance(value, dict):
        raise BadRequest('"Replace" must be a JSON object')
    return [
        (_checked_path(name, force, "replaced", dictionary), replacement)
        for name, replacement in value.items()
    ]


def _checked_path(name: str, force: bool, verb: str,
                  dictionary: PrivateDictionary | None) -> TagPath:  # fmt: skip
    """As Orthanc, only top-level identifiers need ``Force``; paths into sequences never do."""
    path = TagPath.parse(name, lambda token: resolve_tag(token, dictionary))
    if path.is_plain and path.tag in IDENTIFIERS and not force:
        raise BadRequest(
            f'Marking tag "{name}" as to be {verb} requires the "Force" option to be set to true'
        )
    return path


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
    force = bool_option(body, "Force", False)
    modification = Modification(level=level, allow_manual_identifiers=force)
    if bool_option(body, "RemovePrivateTags", False):
        modification.remove_private_tags = True
    _apply_lists(modification, body, force, dictionary)
    if "PrivateCreator" in body:
        modification.private_creator = str(body["PrivateCreator"])
    modification.transcode = _transcode_option(body)
    modification.check()
    return modification


def _apply_lists(modification: Modification, body: dict[str, Any], force: bool,
                 dictionary: PrivateDictionary | None) -> None:  # fmt: skip
    """``Remove``, then ``Replace``, then ``Keep`` (Orthanc's order: the last one wins)."""
    for path in parse_tag_list(body, "Remove", force, "removed", dictionary):
        modification.remove_path(path)
    for path, value in parse_replacements(body, force, dictionary):
        modification.replace_path(path, value)
    for path in parse_tag_list(body, "Keep", force, "kept", dictionary):
        modification.keep_path(path)


def parse_anonymize_request(
    body: dict[str, Any], patient_name: str, dictionary: PrivateDictionary | None = None
) -> Modification:
    """``patient_name``: what PatientName becomes unless the request replaces or keeps it."""
    force = bool_option(body, "Force", False)
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
    if bool_option(body, "KeepPrivateTags", False):
        modification.remove_private_tags = False
        modification._not_orthanc_anonymization()
    _apply_lists(modification, body, force, dictionary)
    if PATIENT_NAME in modification.uids:  # neither replaced nor kept: "Anonymized<n>"
        modification.replace(PATIENT_NAME, patient_name, safe_for_anonymization=True)
    if "PrivateCreator" in body:
        modification.private_creator = str(body["PrivateCreator"])
    modification.transcode = _transcode_option(body)
    modification.check()
    return modification


def modify_bytes(data: bytes, modification: Modification,
                 dictionary: PrivateDictionary | None = None) -> bytes:  # fmt: skip
    ds = read_dataset(data)
    modification.apply(ds, dictionary)
    return encode_dataset(ds, modification.transcode)
