"""ZIP archives and DICOMDIR media of resources, streamed or built by a resumable job.

Layout (as Orthanc 1.10.1's ``ArchiveJob``): archives hold
``<PatientID PatientName>/<AccessionNumber StudyDescription>/<Modality SeriesDescription>/``
``MR000000.dcm`` (names reduced to ASCII letters, digits, ``.``/``_`` and single spaces; a name
already used in the same folder gets ``-2``, ``-3``…), resources visited in the order of their
Orthanc IDs; media hold ``IMAGES/IM0``, ``IMAGES/IM1``… and a ``DICOMDIR``. Every DICOM file is
copied byte for byte from the storage area (unless transcoding is asked for). ZIPs are *stored* (no
compression) by default, which is what makes them fast; ``deflate`` is an option.

Two writers:

* :func:`stream_archive` feeds an HTTP answer with ~1 MB chunks from zipstream-ng as the files are
  read, so the download starts at once (synchronous ``GET``/``POST``).
* :class:`ArchiveJob` writes ``archive.zip`` into the job's output folder a few files per step.
  After each step the file is a complete ZIP; the snapshot lists the entries written and where the
  last one ends, so a job resumed after a crash truncates the file there and goes on.
"""

from __future__ import annotations

import io
import itertools
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from zipstream import ZipStream

from obelisk.core.levels import Level
from obelisk.errors import BadRequest, InexistentItem, ObeliskError, UnknownResource
from obelisk.index.base import Attachment
from obelisk.jobs.model import JobContext, JobOutput, StepResult, StopReason
from obelisk.services.modification import read_dataset, transcode_dataset

if TYPE_CHECKING:
    from obelisk.services.context import Services

CHUNK_SIZE = 1 << 20
ZIP_COMMENT = b"Created by Obelisk"
MEDIA_FOLDER = "IMAGES"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
STEP_SECONDS = 0.5
_ZIP64_MARGIN = 64 << 20


# -- the plan: which files, under which names ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    path: str
    instance_id: str
    size: int
    attachment: Attachment | None = None


def keep_alphanumeric(text: str) -> str:
    """Orthanc's folder-name filter: ASCII letters, digits, ``.``, ``_``; runs of blanks (and
    ``^``) become one space; leading and trailing spaces go."""
    result: list[str] = []
    last_space = False
    for char in text.replace("^", " "):
        if not char.isascii():
            continue
        if char.isspace():
            if not last_space:
                result.append(" ")
                last_space = True
        elif char.isalnum() or char in "._":
            result.append(char)
            last_space = False
    return "".join(result).strip()


class _Names:
    """Unique names per folder: ``name``, ``name-2``, ``name-3``…"""

    def __init__(self) -> None:
        self._used: dict[tuple[str, str], int] = {}

    def unique(self, folder: str, name: str) -> str:
        count = self._used.get((folder, name), 0) + 1
        self._used[(folder, name)] = count
        return name if count == 1 else f"{name}-{count}"


def _folder_name(level: Level, tags: dict[str, str]) -> str:
    if level is Level.PATIENT:
        raw = f"{tags.get('PatientID', '')} {tags.get('PatientName', '')}"
    elif level is Level.STUDY:
        raw = f"{tags.get('AccessionNumber', '')} {tags.get('StudyDescription', '')}"
    else:
        raw = f"{tags.get('Modality', '')} {tags.get('SeriesDescription', '')}"
    name = keep_alphanumeric(raw)
    return name or f"Unknown {level.title}"


def _file_format(modality: str) -> Callable[[int], str]:
    letters = "".join(c for c in modality if c.isascii())[:2].upper()
    width = 8 - len(letters)
    return lambda n: f"{letters}{n:0{width}d}.dcm"


def plan_archive(
    services: Services, resource_ids: Iterable[str], *, media: bool
) -> list[ArchiveEntry]:
    """The entries of the archive of some resources (patients, studies, series or instances)."""
    resources = services.resources
    # series id → None (whole series) or the explicitly requested instances
    selected: dict[str, list[str] | None] = {}
    chains: dict[str, tuple[str, str]] = {}  # series → (patient, study)

    def add_series(series_id: str, study_id: str, patient_id: str, instance: str | None) -> None:
        chains[series_id] = (patient_id, study_id)
        if instance is None:
            selected[series_id] = None
        elif series_id not in selected or selected[series_id] is not None:
            current = selected.setdefault(series_id, [])
            assert current is not None
            if instance not in current:
                current.append(instance)

    count = 0
    for public_id in resource_ids:
        count += 1
        resource = resources.get_any(public_id)
        if resource.level is Level.INSTANCE:
            series = resources.get(Level.SERIES, resource.parent_public_id or "")
            study = resources.get(Level.STUDY, series.parent_public_id or "")
            add_series(series.public_id, study.public_id, study.parent_public_id or "", public_id)
        elif resource.level is Level.SERIES:
            study = resources.get(Level.STUDY, resource.parent_public_id or "")
            add_series(public_id, study.public_id, study.parent_public_id or "", None)
        else:
            studies = (
                [resource]
                if resource.level is Level.STUDY
                else [resources.get(Level.STUDY, s) for s in resource.children]
            )
            for study in studies:
                for series_id in study.children:
                    add_series(series_id, study.public_id, study.parent_public_id or "", None)
    if count == 0:
        raise BadRequest("No resource to put in the archive")

    names = _Names()
    entries: list[ArchiveEntry] = []
    media_counter = 0
    tree: dict[str, dict[str, list[str]]] = {}
    for series_id, (patient_id, study_id) in chains.items():
        tree.setdefault(patient_id, {}).setdefault(study_id, []).append(series_id)
    for patient_id in sorted(tree):
        patient_dir = names.unique("", _folder_name(Level.PATIENT, _tags(services, patient_id)))
        for study_id in sorted(tree[patient_id]):
            study_dir = names.unique(
                patient_dir, _folder_name(Level.STUDY, _tags(services, study_id))
            )
            for series_id in sorted(tree[patient_id][study_id]):
                series = resources.get(Level.SERIES, series_id)
                folder = f"{patient_dir}/{study_dir}"
                series_dir = names.unique(folder, _folder_name(Level.SERIES, series.main_tags))
                file_name = _file_format(series.main_tags.get("Modality", ""))
                files = services.index.instance_files(series.internal_id)
                wanted = selected[series_id]
                if wanted is not None:
                    by_id = {f.public_id: f for f in files}
                    files = [by_id[i] for i in wanted if i in by_id]
                for number, file in enumerate(files):
                    if media:
                        path = f"{MEDIA_FOLDER}/IM{media_counter}"
                        media_counter += 1
                    else:
                        path = f"{folder}/{series_dir}/{file_name(number)}"
                    entries.append(
                        ArchiveEntry(
                            path, file.public_id, file.attachment.uncompressed_size, file.attachment
                        )
                    )
    return entries


def _tags(services: Services, public_id: str) -> dict[str, str]:
    resource = services.index.lookup(public_id)
    if resource is None:
        raise UnknownResource(f"Unknown resource: {public_id}")
    return resource.main_tags


# -- DICOMDIR ----------------------------------------------------------------------------------
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


# -- reading files -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ArchiveOptions:
    media: bool = False
    extended: bool = False
    deflate: bool = False
    transcode: str | None = None


def _file_chunks(services: Services, entry: ArchiveEntry) -> Iterator[bytes]:
    attachment = entry.attachment or services.resources.dicom_attachment(entry.instance_id)
    yield from services.resources.reader.chunks(attachment, CHUNK_SIZE)


def _transcoded(data: bytes, syntax: str) -> bytes:
    """The file in ``syntax``; the original bytes when pydicom cannot transcode it (as Orthanc)."""
    try:
        ds = read_dataset(data)
        transcode_dataset(ds, syntax)
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()
    except ObeliskError:
        return data


def _header(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)


def _rechunk(pieces: Iterable[bytes], size: int = CHUNK_SIZE) -> Iterator[bytes]:
    buffer = bytearray()
    for piece in pieces:
        if not buffer and len(piece) >= size:
            yield piece
            continue
        buffer += piece
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def stream_archive(
    services: Services, entries: list[ArchiveEntry], options: ArchiveOptions
) -> Iterator[bytes]:
    """The ZIP as ~1 MB chunks, produced while the files are read (nothing is built up front)."""
    method = zipfile.ZIP_DEFLATED if options.deflate else zipfile.ZIP_STORED
    stream = ZipStream(compress_type=method, compress_level=6 if options.deflate else None)
    stream.comment = ZIP_COMMENT
    records: list[dict[str, Any]] = []

    def entry_data(entry: ArchiveEntry) -> Iterator[bytes]:
        try:
            if not options.media and options.transcode is None:
                yield from _file_chunks(services, entry)
                return
            data = b"".join(_file_chunks(services, entry))
        except (InexistentItem, UnknownResource):
            return  # deleted since the plan was made: Orthanc skips it too
        if options.transcode is not None:
            data = _transcoded(data, options.transcode)
        if options.media:
            file_id = entry.path.split("/")
            records.append(record_info(file_id, _header(data), extended=options.extended))
        yield data

    for entry in entries:
        size = entry.size if options.transcode is None else None
        stream.add(entry_data(entry), entry.path, size=size)
    if options.media:
        stream.add((encode_dicomdir(records) for _ in range(1)), "DICOMDIR")
    return _rechunk(stream)


# -- the job -------------------------------------------------------------------------------------
def _zipinfo_json(info: zipfile.ZipInfo) -> dict[str, Any]:
    return {
        "Name": info.filename,
        "Offset": info.header_offset,
        "CRC": info.CRC,
        "CompressedSize": info.compress_size,
        "Size": info.file_size,
        "Method": info.compress_type,
        "DateTime": list(info.date_time),
        "Flags": info.flag_bits,
        "ExtractVersion": info.extract_version,
        "CreateVersion": info.create_version,
        "ExternalAttr": info.external_attr,
    }


def _zipinfo_from_json(data: dict[str, Any]) -> zipfile.ZipInfo:
    date = data["DateTime"]
    info = zipfile.ZipInfo(data["Name"], (date[0], date[1], date[2], date[3], date[4], date[5]))
    info.header_offset = int(data["Offset"])
    info.CRC = int(data["CRC"])
    info.compress_size = int(data["CompressedSize"])
    info.file_size = int(data["Size"])
    info.compress_type = int(data["Method"])
    info.flag_bits = int(data["Flags"])
    info.extract_version = int(data["ExtractVersion"])
    info.create_version = int(data["CreateVersion"])
    info.external_attr = int(data["ExternalAttr"])
    return info


class ArchiveJob:
    """``Archive`` / ``Media``: writes ``archive.zip`` in the output folder, resumably."""

    def __init__(self, services: Services, state: dict[str, Any]) -> None:
        self.services = services
        self.state = state
        self.type_name = "Media" if state["Media"] else "Archive"

    @classmethod
    def create(
        cls,
        services: Services,
        entries: list[ArchiveEntry],
        options: ArchiveOptions,
        description: str = "REST API",
    ) -> ArchiveJob:
        state = {
            "Media": options.media,
            "Extended": options.extended,
            "Deflate": options.deflate,
            "Transcode": options.transcode,
            "Description": description,
            "Entries": [[e.path, e.instance_id, e.size] for e in entries],
            **cls._initial(),
        }
        return cls(services, state)

    @staticmethod
    def _initial() -> dict[str, Any]:
        return {"Position": 0, "End": 0, "Written": [], "Records": [], "Done": False, "Path": None}

    @property
    def options(self) -> ArchiveOptions:
        return ArchiveOptions(
            media=bool(self.state["Media"]),
            extended=bool(self.state["Extended"]),
            deflate=bool(self.state["Deflate"]),
            transcode=self.state["Transcode"],
        )

    def _uncompressed_size(self) -> int:
        return sum(int(e[2]) for e in self.state["Entries"])

    def step(self, context: JobContext) -> StepResult:
        state = self.state
        path = Path(context.output_dir) / "archive.zip"
        state["Path"] = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = "r+b" if path.exists() and state["Written"] else "w+b"
        with open(path, mode) as handle:
            handle.seek(state["End"])
            handle.truncate()
            archive = zipfile.ZipFile(handle, "w", allowZip64=True)
            for data in state["Written"]:
                info = _zipinfo_from_json(data)
                archive.filelist.append(info)
                archive.NameToInfo[info.filename] = info
            archive.comment = ZIP_COMMENT
            try:
                self._write_some(archive)
            finally:
                state["End"] = archive.start_dir
                archive.close()
        if state["Done"]:
            return StepResult.success()
        return StepResult.cont()

    def _write_some(self, archive: zipfile.ZipFile) -> None:
        state = self.state
        options = self.options
        entries = state["Entries"]
        deadline = time.monotonic() + STEP_SECONDS
        zip64 = self._uncompressed_size() >= (2 << 30) - _ZIP64_MARGIN or len(entries) > 65000
        while state["Position"] < len(entries):
            name, instance_id, size = entries[state["Position"]]
            entry = ArchiveEntry(name, instance_id, int(size))
            self._write_entry(archive, entry, options, zip64)
            state["Position"] += 1
            if time.monotonic() > deadline:
                return
        if options.media:
            self._add(archive, "DICOMDIR", [encode_dicomdir(state["Records"])], zip64=False)
        state["Done"] = True

    def _write_entry(
        self, archive: zipfile.ZipFile, entry: ArchiveEntry, options: ArchiveOptions, zip64: bool
    ) -> None:
        try:
            if not options.media and options.transcode is None:
                chunks: Iterable[bytes] = _file_chunks(self.services, entry)
                self._add(archive, entry.path, chunks, zip64=zip64 or entry.size > (1 << 31))
                return
            data = b"".join(_file_chunks(self.services, entry))
        except (InexistentItem, UnknownResource):
            return  # removed since the job was submitted: skipped, as Orthanc does
        if options.transcode is not None:
            data = _transcoded(data, options.transcode)
        if options.media:
            record = record_info(entry.path.split("/"), _header(data), extended=options.extended)
            self.state["Records"].append(record)
        self._add(archive, entry.path, [data], zip64=zip64)

    def _add(
        self, archive: zipfile.ZipFile, name: str, chunks: Iterable[bytes], *, zip64: bool
    ) -> None:
        info = zipfile.ZipInfo(name, time.localtime(time.time())[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if self.state["Deflate"] else zipfile.ZIP_STORED
        info.external_attr = 0o600 << 16
        with archive.open(info, "w", force_zip64=zip64) as target:
            for chunk in chunks:
                target.write(chunk)
        self.state["Written"].append(_zipinfo_json(info))

    def progress(self) -> float:
        total = len(self.state["Entries"]) + 1
        return min(1.0, (int(self.state["Position"]) + (1 if self.state["Done"] else 0)) / total)

    def content(self) -> dict[str, Any]:
        state = self.state
        uncompressed = self._uncompressed_size()
        size = 0
        if state["Path"] and Path(state["Path"]).exists():
            size = Path(state["Path"]).stat().st_size
        content: dict[str, Any] = {
            "Description": state["Description"],
            "InstancesCount": len(state["Entries"]),
            "UncompressedSize": str(uncompressed),
            "UncompressedSizeMB": uncompressed // (1 << 20),
            "ArchiveSize": str(size),
            "ArchiveSizeMB": size // (1 << 20),
        }
        if state["Transcode"]:
            content["Transcode"] = state["Transcode"]
        return content

    def serialize(self) -> dict[str, Any]:
        return {"Type": self.type_name, **self.state}

    def reset(self) -> None:
        if self.state["Path"]:
            Path(self.state["Path"]).unlink(missing_ok=True)
        self.state.update(self._initial())

    def stop(self, reason: StopReason) -> None:
        return None

    def outputs(self) -> dict[str, JobOutput]:
        if not self.state["Done"] or not self.state["Path"]:
            return {}
        return {"archive": JobOutput("application/zip", "archive.zip", Path(self.state["Path"]))}
