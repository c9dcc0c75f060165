"""The index protocol: the metadata database behind the resource tree.

Reads may come from any thread. Writes happen inside :meth:`Index.write`, which yields an
:class:`IndexWriter` bound to one transaction; a back-end serialises writers of one process, and
the database serialises processes. Reads see the last commit (on SQLite ``:memory:``, possibly a
write in progress). Several servers may share a PostgreSQL index: creating the same patient,
study or series at the same time is not an error.

Metadata and attachment rows carry a revision: :data:`FIRST_REVISION` when created, one more at
each change. A write given an :class:`Expected` is a compare-and-set: the check and the write are
one transaction (a conditional statement), and a mismatch raises an
:class:`~obelisk.errors.ObeliskError` with the code ``Revision`` (409), changing nothing.

Failures of the database are :class:`~obelisk.errors.ObeliskError` with the code ``Database``,
``DatabaseUnavailable`` (503) or ``DatabaseCannotSerialize`` (503: two writers deadlocked, retry
the transaction). A write transaction that raises is rolled back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from obelisk.core.changes import ChangeType
from obelisk.core.levels import Level
from obelisk.core.matching import Constraint

#: The revision of a metadata or attachment row when it is created; every change adds one.
#: (Orthanc's REST API counts from 0: it shows ``revision - FIRST_REVISION``.)
FIRST_REVISION = 1


@dataclass(frozen=True, slots=True)
class Resource:
    internal_id: int
    level: Level
    public_id: str
    parent_internal_id: int | None
    parent_public_id: str | None
    main_tags: dict[str, str]
    #: On studies: the patient's main tags, copied as Orthanc does.
    patient_tags: dict[str, str] | None
    is_stable: bool
    last_update: str
    protected: bool = False
    children: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ChildCount:
    """A child of some resource, with its main tags and how many children it has in turn."""

    parent_internal_id: int
    main_tags: dict[str, str]
    children: int


@dataclass(frozen=True, slots=True)
class Attachment:
    content_type: int
    uuid: str
    uncompressed_size: int
    uncompressed_md5: str
    compressed_size: int
    compressed_md5: str
    compression: int = 0  # 0 = none, 1 = zlib with Orthanc's size prefix
    revision: int = FIRST_REVISION


@dataclass(frozen=True, slots=True)
class MetadataEntry:
    value: str
    revision: int = FIRST_REVISION


@dataclass(frozen=True, slots=True)
class Expected:
    """What a compare-and-set write of a metadata or attachment expects to find.

    ``revision`` None: no such item (the write creates it, and replaces nothing). Otherwise, an
    item that exists must have this revision and ``md5`` (MD5 of the metadata value, or the
    uncompressed MD5 of the attachment); a missing one is created by a set, and reported
    missing by a delete, as Orthanc does with ``If-Match``.
    """

    revision: int | None
    md5: str = ""

    def matches(self, revision: int, md5: str) -> bool:
        return self.revision == revision and self.md5 == md5


#: Expects the item not to exist.
ABSENT = Expected(None)


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    change_type: ChangeType
    level: Level
    public_id: str
    date: str


@dataclass(frozen=True, slots=True)
class ExportedResource:
    seq: int
    level: Level
    public_id: str
    remote_modality: str
    patient_id: str
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    date: str


@dataclass(frozen=True, slots=True)
class NewInstance:
    """Everything the index records for one received instance."""

    public_ids: tuple[str, str, str, str]  # patient, study, series, instance
    main_tags: dict[Level, dict[str, str]]
    attachments: Sequence[Attachment]
    metadata: dict[int, str]
    #: Metadata of the series, recorded when this instance creates it (RemoteAET,
    #: ExpectedNumberOfInstances), as Orthanc does.
    series_metadata: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    instance_internal_id: int
    already_stored: bool
    #: Levels whose resource this store created (NewPatient, NewStudy…).
    created: tuple[Level, ...] = ()
    #: Attachments replaced by an overwrite, to be removed from the storage area after commit.
    replaced_uuids: tuple[str, ...] = ()
    #: This instance was the last one its series expected (a CompletedSeries change was logged).
    completed_series: bool = False


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    removed_uuids: tuple[str, ...]
    #: (level, public id) of the nearest ancestor left behind, if any.
    remaining_ancestor: tuple[Level, str] | None
    deleted: tuple[tuple[Level, str], ...]


@dataclass(frozen=True, slots=True)
class Totals:
    patients: int
    studies: int
    series: int
    instances: int
    compressed_size: int
    uncompressed_size: int


@dataclass(frozen=True, slots=True)
class InstanceFile:
    """An instance and the attachment holding its DICOM file, as archives and tools read them."""

    public_id: str
    internal_id: int
    attachment: Attachment
    series_internal_id: int = 0
    study_internal_id: int = 0


class IndexWriter(Protocol):
    """Write operations inside one transaction."""

    def store_instance(self, new: NewInstance, *, overwrite: bool, now: str) -> StoreOutcome: ...

    def attach_new(self, internal_id: int, attachments: Sequence[Attachment]) -> None:
        """Adds the attachments of an instance this transaction just stored without them (its
        file was still being flushed); they are written with the transaction's other rows."""
        ...

    def flush(self) -> None:
        """Writes the rows kept back so far (the commit would): lets a caller do that work
        before it waits for something, so that the commit itself is short."""
        ...

    def replace_main_tags(
        self,
        internal_id: int,
        level: Level,
        tags: dict[str, str],
        patient_tags: dict[str, str] | None = None,
    ) -> None:
        """Replaces the main tags of a resource (and, on a study, its copy of the patient's),
        their searchable values with them (``/{level}/{id}/reconstruct``)."""
        ...

    def delete_resource(self, internal_id: int, *, now: str) -> DeleteOutcome: ...

    def set_metadata(
        self, internal_id: int, metadata_type: int, value: str, *, expected: Expected | None = None
    ) -> int:
        """Adds or replaces a metadata; returns its new revision. With ``expected``, only if
        the current row (or its absence) is the one expected."""
        ...

    def delete_metadata(
        self, internal_id: int, metadata_type: int, *, expected: Expected | None = None
    ) -> bool:
        """False when there was no such metadata; with ``expected``, deletes only the expected
        row."""
        ...

    def set_attachment(
        self, internal_id: int, attachment: Attachment, *, expected: Expected | None = None
    ) -> Attachment | None:
        """Adds or replaces an attachment; returns the replaced one. The new row's revision is
        the replaced one's plus one (:data:`FIRST_REVISION` when none), whatever
        ``attachment.revision`` says. With ``expected``, only if the current row (or its
        absence) is the one expected."""
        ...

    def delete_attachment(
        self, internal_id: int, content_type: int, *, expected: Expected | None = None
    ) -> Attachment | None:
        """The deleted attachment, None when there was none; with ``expected``, deletes only
        the expected row."""
        ...

    def replace_attachment(self, internal_id: int, old_uuid: str, replacement: Attachment) -> bool:
        """Points the attachment row of ``replacement.content_type`` that holds ``old_uuid`` at
        ``replacement`` instead (its revision goes up by one), in one statement. False, changing
        nothing, when no such row is left: it was deleted or replaced meanwhile."""
        ...

    def log_change(
        self, change_type: ChangeType, level: Level, public_id: str, now: str
    ) -> None: ...

    def log_export(self, exported: ExportedResource) -> None: ...

    def set_protected(self, internal_id: int, protected: bool) -> None: ...

    def mark_stable(self, older_than_epoch: float, now: str) -> list[tuple[Level, str]]:
        """Marks unstable resources last updated before the given time as stable."""
        ...

    def clear_changes(self) -> None: ...

    def clear_exports(self) -> None: ...

    def set_global(self, name: str, value: str) -> None: ...


class Index(Protocol):
    """Read operations, and :meth:`write` for a write transaction."""

    #: Reads are answered in this process (SQLite), without a network round trip: cheap enough
    #: for an event loop to make one in passing.
    in_process: bool

    def write(self) -> AbstractContextManager[IndexWriter]: ...

    def close(self) -> None: ...

    def lookup(self, public_id: str, level: Level | None = None) -> Resource | None: ...

    def get_by_internal_ids(
        self, internal_ids: Sequence[int], *, children: bool
    ) -> list[Resource]: ...

    def list_public_ids(
        self, level: Level, *, since: int = 0, limit: int | None = None
    ) -> list[str]: ...

    def list_internal_ids(
        self, level: Level, *, since: int = 0, limit: int | None = None
    ) -> list[int]: ...

    def find(
        self, level: Level, constraints: Sequence[Constraint], *, since: int, limit: int | None
    ) -> list[int]:
        """Internal ids of the resources of ``level`` matching every constraint, in id order."""
        ...

    def children_public_ids(self, internal_id: int) -> list[str]: ...

    def child_counts(self, parent_ids: Sequence[int]) -> list[ChildCount]:
        """The children of ``parent_ids`` in id order, each with its own number of children."""
        ...

    def instance_files(self, internal_id: int, content_type: int = 1) -> list[InstanceFile]:
        """The instances below (or equal to) a resource, in tree order, with one attachment."""
        ...

    def lookup_identifier(self, value: str) -> list[Resource]:
        """Resources whose identifier tag (PatientID, the UIDs) equals ``value``."""
        ...

    def attachments(self, internal_id: int) -> list[Attachment]: ...

    def metadata(self, internal_id: int) -> dict[int, str]: ...

    def metadata_entry(self, internal_id: int, metadata_type: int) -> MetadataEntry | None:
        """One metadata with its revision."""
        ...

    def attachments_of_many(
        self, internal_ids: Sequence[int], content_type: int
    ) -> dict[int, Attachment]: ...

    def metadata_of_many(
        self, internal_ids: Sequence[int], metadata_type: int
    ) -> dict[int, str]: ...

    def changes(self, since: int, limit: int) -> tuple[list[Change], int]:
        """Changes after ``since`` (at most ``limit``), and :meth:`last_change_seq`."""
        ...

    def has_changes_after(self, seq: int) -> bool: ...

    def last_change(self) -> Change | None: ...

    def last_change_seq(self) -> int:
        """The last sequence number ever given to a change (survives deletions and clears)."""
        ...

    def exports(self, since: int, limit: int) -> tuple[list[ExportedResource], int]: ...

    def totals(self) -> Totals: ...

    def subtree_totals(self, internal_id: int) -> tuple[dict[Level, int], int, int]:
        """Count of descendants per level, compressed and uncompressed size of its files."""
        ...

    def oldest_unprotected_patient(self, exclude: str | None = None) -> Resource | None: ...

    def get_global(self, name: str) -> str | None: ...

    def all_attachment_uuids(self) -> Iterator[str]: ...
