"""DICOMDIR of a media archive (``/media``, ``/tools/create-media``), written with pydicom.

PATIENT / STUDY / SERIES records, then one record per file whose type follows its SOP class (IMAGE,
ENCAP DOC, SR DOCUMENT, PRESENTATION, RT …, RAW DATA). :func:`record_info` extracts what a file
contributes, as JSON (kept in archive job journals); :func:`encode_dicomdir` encodes the whole set,
in two passes to compute the record offsets. Readable by ``pydicom.fileset.FileSet`` and dcmdump.
"""

from __future__ import annotations

import io
import itertools
import warnings
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

_PATIENT_KEYS = ("PatientName", "PatientID")
_PATIENT_EXTENDED = ("PatientBirthDate", "PatientSex")
_STUDY_KEYS = (
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "StudyInstanceUID",
    "StudyID",
    "AccessionNumber",
)
_STUDY_EXTENDED = ("ReferringPhysicianName",)
_SERIES_KEYS = ("Modality", "SeriesInstanceUID", "SeriesNumber")
_SERIES_EXTENDED = ("SeriesDescription", "SeriesDate", "SeriesTime", "BodyPartExamined")
_IMAGE_KEYS = ("InstanceNumber",)
_IMAGE_EXTENDED = ("ImageType", "Rows", "Columns", "NumberOfFrames", "ContentDate", "ContentTime")

_RECORD_TYPES = {
    "1.2.840.10008.5.1.4.1.1.104.1": "ENCAP DOC",
    "1.2.840.10008.5.1.4.1.1.104.2": "ENCAP DOC",
    "1.2.840.10008.5.1.4.1.1.66": "RAW DATA",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT DOSE",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT STRUCTURE SET",
    "1.2.840.10008.5.1.4.1.1.481.5": "RT PLAN",
    "1.2.840.10008.5.1.4.1.1.481.4": "RT TREAT RECORD",
}


def _record_type(sop_class: str) -> str:
    if sop_class in _RECORD_TYPES:
        return _RECORD_TYPES[sop_class]
    if sop_class.startswith("1.2.840.10008.5.1.4.1.1.88."):
        return "SR DOCUMENT"
    if sop_class.startswith("1.2.840.10008.5.1.4.1.1.11."):
        return "PRESENTATION"
    return "IMAGE"


def _text(ds: Dataset, keyword: str) -> str | None:
    if keyword not in ds:
        return None
    value = ds[keyword].value
    if value is None:
        return ""
    if isinstance(value, list | pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


def record_info(file_id: list[str], ds: Dataset, *, extended: bool) -> dict[str, Any]:
    """What the DICOMDIR needs from one instance, as JSON (kept in job snapshots)."""

    def pick(keys: tuple[str, ...], more: tuple[str, ...]) -> dict[str, str]:
        found = {}
        for key in keys + (more if extended else ()):
            value = _text(ds, key)
            if value is not None:
                found[key] = value
        return found

    meta = getattr(ds, "file_meta", FileMetaDataset())
    return {
        "FileID": file_id,
        "CharacterSet": _text(ds, "SpecificCharacterSet"),
        "Patient": pick(_PATIENT_KEYS, _PATIENT_EXTENDED),
        "Study": pick(_STUDY_KEYS, _STUDY_EXTENDED),
        "Series": pick(_SERIES_KEYS, _SERIES_EXTENDED),
        "Image": pick(_IMAGE_KEYS, _IMAGE_EXTENDED),
        "SOPClassUID": _text(ds, "SOPClassUID") or str(meta.get("MediaStorageSOPClassUID", "")),
        "SOPInstanceUID": _text(ds, "SOPInstanceUID") or "",
        "TransferSyntaxUID": str(meta.get("TransferSyntaxUID", pydicom.uid.ExplicitVRLittleEndian)),
    }


def encode_dicomdir(records: list[dict[str, Any]]) -> bytes:
    """A DICOMDIR (explicit VR little endian) over the given :func:`record_info` items."""
    patients: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    first: dict[str, dict[str, Any]] = {}
    for info in records:
        patient_key = info["Patient"].get("PatientID", "")
        study_key = info["Study"].get("StudyInstanceUID", "")
        series_key = info["Series"].get("SeriesInstanceUID", "")
        first.setdefault(patient_key, info)
        first.setdefault(f"{patient_key}|{study_key}", info)
        first.setdefault(f"{patient_key}|{study_key}|{series_key}", info)
        patients.setdefault(patient_key, {}).setdefault(study_key, {}).setdefault(
            series_key, []
        ).append(info)

    # Flat list in depth-first order, with the tree as (index, children indexes).
    items: list[Dataset] = []
    children: dict[int, list[int]] = {}
    roots: list[int] = []

    def record(kind: str, values: dict[str, str], charset: str | None) -> int:
        item = Dataset()
        item.OffsetOfTheNextDirectoryRecord = 0
        item.RecordInUseFlag = 0xFFFF
        item.OffsetOfReferencedLowerLevelDirectoryEntity = 0
        item.DirectoryRecordType = kind
        if charset:
            item.SpecificCharacterSet = charset.split("\\")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for keyword, value in values.items():
                setattr(item, keyword, value.split("\\") if "\\" in value else value)
        items.append(item)
        return len(items) - 1

    for patient_key, studies in patients.items():
        info = first[patient_key]
        patient = record("PATIENT", {"PatientID": "", **info["Patient"]}, info["CharacterSet"])
        roots.append(patient)
        for study_key, series_map in studies.items():
            info = first[f"{patient_key}|{study_key}"]
            study_values = {"StudyDate": "", "StudyTime": "", **info["Study"]}
            study = record("STUDY", study_values, info["CharacterSet"])
            children.setdefault(patient, []).append(study)
            for series_key, images in series_map.items():
                info = first[f"{patient_key}|{study_key}|{series_key}"]
                series = record("SERIES", info["Series"], info["CharacterSet"])
                children.setdefault(study, []).append(series)
                for image_info in images:
                    image = record(
                        _record_type(image_info["SOPClassUID"]),
                        image_info["Image"],
                        image_info["CharacterSet"],
                    )
                    item = items[image]
                    item.ReferencedFileID = image_info["FileID"]
                    item.ReferencedSOPClassUIDInFile = image_info["SOPClassUID"]
                    item.ReferencedSOPInstanceUIDInFile = image_info["SOPInstanceUID"]
                    item.ReferencedTransferSyntaxUIDInFile = image_info["TransferSyntaxUID"]
                    children.setdefault(series, []).append(image)

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.UID(DICOMDIR_SOP_CLASS)
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.FileSetID = ""
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = DicomSequence(items)

    def encode() -> bytes:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()

    # Offsets are those of each record's item tag: encode once, read where the items start,
    # then encode again with the offsets (they are fixed-size UL values: nothing moves).
    draft = pydicom.dcmread(io.BytesIO(encode()))
    offsets = [int(item.seq_item_tell) for item in draft.DirectoryRecordSequence]
    for parent, kids in children.items():
        items[parent].OffsetOfReferencedLowerLevelDirectoryEntity = offsets[kids[0]]
        for current, following in itertools.pairwise(kids):
            items[current].OffsetOfTheNextDirectoryRecord = offsets[following]
    for current, following in itertools.pairwise(roots):
        items[current].OffsetOfTheNextDirectoryRecord = offsets[following]
    if roots:
        ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = offsets[roots[0]]
        ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = offsets[roots[-1]]
    return encode()
