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
  After each step the file is a complete ZIP; a journal next to it lists the entries written, and
  the snapshot says where the ZIP's last entry and the journal end, so a job resumed after a crash
  truncates both files there and goes on.
"""

from __future__ import annotations

import io
import json
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pydicom
from pydicom.dataset import Dataset
from zipstream import ZipStream

from obelisk.core.levels import Level
from obelisk.errors import BadRequest, InexistentItem, ObeliskError, UnknownResource
from obelisk.index.base import Attachment
from obelisk.jobs.model import JobContext, JobOutput, StepResult, StopReason
from obelisk.services.dicom_values import read_dataset, transcode_dataset
from obelisk.services.dicomdir import encode_dicomdir, record_info

if TYPE_CHECKING:
    from obelisk.services.context import Services

CHUNK_SIZE = 1 << 20
ZIP_COMMENT = b"Created by Obelisk"
MEDIA_FOLDER = "IMAGES"
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
    """``Archive`` / ``Media``: writes ``archive.zip`` in the output folder, resumably.

    The central-directory entries written so far (and, for media, the DICOMDIR records) go to a
    journal next to the ZIP, one JSON line per file, rather than into the snapshot: the snapshot
    (saved after every step) stays small however many files the archive holds. The snapshot keeps
    the counts and where the ZIP and the journal end; a resumed job cuts both files there.
    """

    def __init__(self, services: Services, state: dict[str, Any]) -> None:
        self.services = services
        self.state = state
        self.type_name = "Media" if state["Media"] else "Archive"
        self._written: list[zipfile.ZipInfo] | None = None  # None: read from the journal
        self._records: list[dict[str, Any]] = []

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
        return {"Position": 0, "End": 0, "Written": 0, "JournalEnd": 0, "Done": False,
                "Path": None}  # fmt: skip

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
        journal_path = path.with_name("archive.entries")
        if self._written is None:
            self._load_journal(journal_path)
        assert self._written is not None
        mode = "r+b" if path.exists() and self._written else "w+b"
        with open(path, mode) as handle, open(journal_path, "ab") as journal:
            handle.seek(state["End"])
            handle.truncate()
            archive = zipfile.ZipFile(handle, "w", allowZip64=True)
            for info in self._written:
                archive.filelist.append(info)
                archive.NameToInfo[info.filename] = info
            archive.comment = ZIP_COMMENT
            try:
                self._write_some(archive, journal)
            finally:
                state["End"] = archive.start_dir
                archive.close()
                state["JournalEnd"] = journal.tell()
                state["Written"] = len(self._written)
        if state["Done"]:
            return StepResult.success()
        return StepResult.cont()

    def _load_journal(self, journal_path: Path) -> None:
        """The entries of the last saved step; lines written after it (a crash) are cut off."""
        written = self.state["Written"]
        self._records = list(self.state.get("Records", []))
        if isinstance(written, list):  # a snapshot from before the journal existed
            self._written = [_zipinfo_from_json(data) for data in written]
            return
        self._written = []
        if not written:
            journal_path.unlink(missing_ok=True)
            return
        with open(journal_path, "r+b") as journal:
            journal.truncate(int(self.state["JournalEnd"]))
            for line in journal.read().splitlines():
                data = json.loads(line)
                self._written.append(_zipinfo_from_json(data["Entry"]))
                if "Record" in data:
                    self._records.append(data["Record"])

    def _write_some(self, archive: zipfile.ZipFile, journal: BinaryIO) -> None:
        state = self.state
        options = self.options
        entries = state["Entries"]
        deadline = time.monotonic() + STEP_SECONDS
        zip64 = self._uncompressed_size() >= (2 << 30) - _ZIP64_MARGIN or len(entries) > 65000
        while state["Position"] < len(entries):
            name, instance_id, size = entries[state["Position"]]
            entry = ArchiveEntry(name, instance_id, int(size))
            self._write_entry(archive, journal, entry, options, zip64)
            state["Position"] += 1
            if time.monotonic() > deadline:
                return
        if options.media:
            dicomdir = [encode_dicomdir(self._records)]
            self._add(archive, journal, "DICOMDIR", dicomdir, zip64=False)
        state["Done"] = True

    def _write_entry(
        self,
        archive: zipfile.ZipFile,
        journal: BinaryIO,
        entry: ArchiveEntry,
        options: ArchiveOptions,
        zip64: bool,
    ) -> None:
        try:
            if not options.media and options.transcode is None:
                chunks: Iterable[bytes] = _file_chunks(self.services, entry)
                large = zip64 or entry.size > (1 << 31)
                self._add(archive, journal, entry.path, chunks, zip64=large)
                return
            data = b"".join(_file_chunks(self.services, entry))
        except (InexistentItem, UnknownResource):
            return  # removed since the job was submitted: skipped, as Orthanc does
        if options.transcode is not None:
            data = _transcoded(data, options.transcode)
        record = None
        if options.media:
            record = record_info(entry.path.split("/"), _header(data), extended=options.extended)
        self._add(archive, journal, entry.path, [data], zip64=zip64, record=record)

    def _add(
        self,
        archive: zipfile.ZipFile,
        journal: BinaryIO,
        name: str,
        chunks: Iterable[bytes],
        *,
        zip64: bool,
        record: dict[str, Any] | None = None,
    ) -> None:
        info = zipfile.ZipInfo(name, time.localtime(time.time())[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if self.state["Deflate"] else zipfile.ZIP_STORED
        info.external_attr = 0o600 << 16
        with archive.open(info, "w", force_zip64=zip64) as target:
            for chunk in chunks:
                target.write(chunk)
        assert self._written is not None
        self._written.append(info)
        line: dict[str, Any] = {"Entry": _zipinfo_json(info)}
        if record is not None:
            self._records.append(record)
            line["Record"] = record
        journal.write(json.dumps(line).encode() + b"\n")

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
            Path(self.state["Path"]).with_name("archive.entries").unlink(missing_ok=True)
        self.state.pop("Records", None)
        self.state.update(self._initial())
        self._written = None
        self._records = []

    def stop(self, reason: StopReason) -> None:
        return None

    def outputs(self) -> dict[str, JobOutput]:
        if not self.state["Done"] or not self.state["Path"]:
            return {}
        return {"archive": JobOutput("application/zip", "archive.zip", Path(self.state["Path"]))}
