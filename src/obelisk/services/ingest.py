"""Receiving instances: parse the header, store the bytes, index them — durable before acknowledged.

Every entry point (REST upload, C-STORE, STOW-RS, scripts) calls :meth:`IngestService.store` (or
``store_async`` from an event loop). The header is walked first (nothing is written for a file
that is not stored); the file is then hashed and flushed (``fsync``) in a worker thread, while a
single :class:`GroupCommitter` thread writes the index rows of every instance waiting at that
moment in one transaction, so four concurrent uploads cost one commit, not four. Every row,
the attachment's included, is written while the files are still being flushed; the transaction
commits only once every file in it is durable: the ``fsync`` and the index work overlap, yet an
index row never points at a file a power loss could take away.
A caller returns only once its transaction has committed: an acknowledged instance always has
both its file and its index row. A crash in between leaves at most an orphan file, never a row
without a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from obelisk.core.changes import ChangeType, ContentType, MetadataType
from obelisk.core.identifiers import ResourceIds
from obelisk.core.levels import Level
from obelisk.core.parsing import ParsedInstance, parse_instance
from obelisk.core.series import expected_instances
from obelisk.core.timestamps import now_iso
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.events import EventBus, InstanceStored, ResourceChanged
from obelisk.index.base import Attachment, Index, NewInstance, StoreOutcome
from obelisk.metrics import Metrics
from obelisk.services.files import encode_attachment
from obelisk.storage.base import StorageArea

log = logging.getLogger("obelisk.ingest")


class StoreStatus(enum.Enum):
    Success = "Success"
    AlreadyStored = "AlreadyStored"
    Failure = "Failure"
    FilteredOut = "FilteredOut"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an instance came from; recorded as Orthanc's Origin/RemoteAET/… metadata."""

    kind: str = "Unknown"  # RestApi | DicomProtocol | Lua | Plugins | Unknown
    remote_aet: str = ""
    called_aet: str = ""
    remote_ip: str = ""
    http_username: str = ""


@dataclass(frozen=True, slots=True)
class StoreResult:
    status: StoreStatus
    ids: ResourceIds


#: Decides whether a parsed instance may be stored (Lua's ReceivedInstanceFilter, Python hooks).
InstanceFilter = Callable[[ParsedInstance, Origin], bool]


@dataclass(frozen=True, slots=True)
class IngestOptions:
    overwrite: bool = False
    compress: bool = False
    max_batch: int = 256
    max_storage_size_mb: int = 0
    max_patient_count: int = 0
    reject_when_full: bool = False


@dataclass(slots=True)
class _StoredFile:
    """A file being hashed, written and flushed by another thread than the committer's."""

    uuid: str
    #: Its description (hashes, sizes), known before it is durable: the committer writes the
    #: attachment row meanwhile.
    described: Future[Attachment] = field(default_factory=Future)
    #: Done once the file is durable; its exception if it could not be stored.
    durable: Future[None] = field(default_factory=Future)


@dataclass(slots=True)
class _Pending:
    #: The index rows, without the attachment.
    new: NewInstance
    stored_file: _StoredFile
    future: Future[StoreOutcome]


@dataclass(frozen=True, slots=True)
class _Prepared:
    parsed: ParsedInstance
    origin: Origin
    started: float  # perf_counter() when the store began (orthanc_store_dicom_duration_ms)
    stored_file: _StoredFile

    def new_instance(self) -> NewInstance:
        return NewInstance(
            public_ids=self.parsed.ids.by_level(),
            main_tags=self.parsed.main_tags,
            attachments=(),
            metadata=_instance_metadata(self.parsed, self.origin),
            series_metadata=_series_metadata(self.parsed, self.origin),
        )


class GroupCommitter:
    """One thread that commits the index rows of many instances per transaction.

    Callers submit an instance with the future of its file: the rows are written while the file
    is flushed, its attachment row once it is durable, and the transaction commits only when every
    file in it is, so an index row never points at a file that a power loss could take away.
    """

    def __init__(
        self,
        index: Index,
        *,
        overwrite: bool,
        max_batch: int,
        after_commit: Callable[[list[tuple[NewInstance, StoreOutcome]]], None],
    ) -> None:
        self._index = index
        self._overwrite = overwrite
        self._max_batch = max(1, max_batch)
        self._after_commit = after_commit
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="obelisk-commit", daemon=True)
        self._thread.start()
        self.batches = 0
        self.committed = 0

    def submit(self, new: NewInstance, stored_file: _StoredFile) -> Future[StoreOutcome]:
        future: Future[StoreOutcome] = Future()
        self._queue.put(_Pending(new, stored_file, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            # From here a caller giving up can no longer cancel; one that already did is skipped
            # (its file is removed by the callback that saw the cancel).
            batch = [p for p in batch if p.future.set_running_or_notify_cancel()]
            if batch:
                self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        now = now_iso()
        try:
            outcomes = self._write_rows(batch, now)
        except Exception:
            if len(batch) > 1:  # find the culprit: commit one by one
                for pending in batch:
                    self._commit([pending])
                return
            failed = batch[0].stored_file.durable.exception()
            if failed is not None:  # its file could not be stored: nothing was committed
                batch[0].future.set_exception(failed)
                return
            log.exception("Cannot index instance %s", batch[0].new.public_ids[3])
            batch[0].future.set_exception(ObeliskError("Cannot store an instance in the index"))
            return
        self.batches += 1
        self.committed += len(batch)
        done = [(p.new, o) for p, o in zip(batch, outcomes, strict=True)]
        try:
            self._after_commit(done)
        finally:
            for pending, outcome in zip(batch, outcomes, strict=True):
                pending.future.set_result(outcome)

    def _write_rows(self, batch: list[_Pending], now: str) -> list[StoreOutcome]:
        """One transaction for the batch, tried again when two writers deadlocked (PostgreSQL
        replicas storing the same series): the database undid it, so nothing is half done."""
        for attempt in range(_SERIALIZATION_ATTEMPTS):
            try:
                with self._index.write() as writer:
                    outcomes = [
                        writer.store_instance(p.new, overwrite=self._overwrite, now=now)
                        for p in batch
                    ]
                    kept = [p for p, o in zip(batch, outcomes, strict=True) if not o.already_stored]
                    for pending, outcome in zip(batch, outcomes, strict=True):
                        if not outcome.already_stored:
                            attachment = pending.stored_file.described.result()
                            writer.attach_new(outcome.instance_internal_id, (attachment,))
                    writer.flush()
                    # Only the commit waits for the files: one that failed undoes the transaction.
                    for pending in kept:
                        pending.stored_file.durable.result()
                    return outcomes
            except ObeliskError as exc:
                if exc.code is not ErrorCode.DatabaseCannotSerialize:
                    raise
                if attempt == _SERIALIZATION_ATTEMPTS - 1:
                    raise
                log.info("Index transaction conflicted with another writer; trying again")
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")


#: Largest file written by the event loop itself (a copy into the page cache, ~0.1 ms for 256 KiB);
#: bigger ones are written by the worker thread that flushes them.
_WRITE_IN_CALLER_MAX = 1 << 20

#: Tries of one batch transaction that conflicts with another writer before giving up.
_SERIALIZATION_ATTEMPTS = 5


class IngestService:
    def __init__(
        self,
        index: Index,
        storage: StorageArea,
        bus: EventBus,
        options: IngestOptions,
        *,
        delete_patient: Callable[[str], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._index = index
        self._storage = storage
        self._bus = bus
        self._options = options
        self._delete_patient = delete_patient
        self._metrics = metrics or Metrics(enabled=False)
        #: Hashes, writes and flushes received files while their headers are parsed (all three
        #: release the GIL).
        self._flusher = ThreadPoolExecutor(max_workers=8, thread_name_prefix="obelisk-store")
        self._count_lock = threading.Lock()
        self._being_stored = 0
        self.filters: list[InstanceFilter] = []
        self._committer = GroupCommitter(
            index,
            overwrite=options.overwrite,
            max_batch=options.max_batch,
            after_commit=self._after_commit,
        )

    @property
    def committer(self) -> GroupCommitter:
        return self._committer

    def close(self) -> None:
        self._committer.close()
        self._flusher.shutdown(wait=True)

    def store(self, data: bytes, origin: Origin) -> StoreResult:
        """Stores one DICOM file; blocks until it is durable. Raises ``BadFileFormat``.

        For threads that may block (a DICOM association, a job): the header is walked first,
        then this thread hashes, writes and flushes the file itself while the committer writes
        the index rows — one thread hand-off fewer than through the worker pool.
        """
        with self._storing() as alone:
            return self._store(data, origin, alone=alone)

    def _store(self, data: bytes, origin: Origin, *, alone: bool) -> StoreResult:
        started = time.perf_counter()
        parsed = parse_instance(data)
        refused = self._refusal(parsed, origin)
        if refused is not None:
            return refused
        stored_file = _StoredFile(self._new_uuid(data, alone=alone))
        prepared = _Prepared(parsed, origin, started, stored_file)
        committed = self._commit(prepared)
        self._store_file(stored_file, data, write=True)  # the committer reports a failure
        outcome = committed.result()
        return self._finish(prepared, outcome)

    async def store_async(self, data: bytes, origin: Origin) -> StoreResult:
        """:meth:`store` for an event loop: parses here, awaits the commit.

        The header walk is short (a fraction of a millisecond, whatever the file size); the
        hash and the ``fsync`` run in a worker thread, without the GIL, while the committer
        writes the index rows: only the ``COMMIT`` waits for the disk.
        """
        # The shortcut for re-sent instances is a database read: on the loop only if it costs
        # no network round trip; the index transaction finds them anyway.
        with self._storing() as alone:
            prepared = self._prepare(data, origin, look_up=self._index.in_process, alone=alone)
            if isinstance(prepared, StoreResult):
                return prepared
            outcome = await asyncio.wrap_future(self._commit(prepared))
            return self._finish(prepared, outcome)

    @contextlib.contextmanager
    def _storing(self) -> Iterator[bool]:
        """Counts the instances being stored; says whether this one is alone. The storage area
        puts off its background work until none is (``StorageArea.storing``)."""
        with self._count_lock:
            alone = self._being_stored == 0
            self._being_stored += 1
        try:
            with self._storage.storing():
                yield alone
        finally:
            with self._count_lock:
                self._being_stored -= 1

    def _prepare(
        self, data: bytes, origin: Origin, *, look_up: bool, alone: bool
    ) -> _Prepared | StoreResult:
        """Parses, filters and de-duplicates, then starts storing the file in a worker thread
        (for the event loop, which must not wait for a disk). Nothing is written for a file that
        is not stored (not DICOM, filtered out, known to be stored already)."""
        started = time.perf_counter()
        parsed = parse_instance(data)
        refused = self._refusal(parsed, origin, look_up=look_up)
        if refused is not None:
            return refused
        return _Prepared(parsed, origin, started, self._start_file(data, alone=alone))

    def _start_file(self, data: bytes, *, alone: bool) -> _StoredFile:
        """Stores ``data`` durably in a worker thread, which hashes it (and compresses it)
        while the committer writes the index rows, then flushes it.

        A small uncompressed file is written here, into the page cache: a worker that had to
        write it too would first wait for the GIL this thread holds, and the disk would start
        later.
        """
        stored_file = _StoredFile(self._new_uuid(data, alone=alone))
        write_here = not self._options.compress and len(data) <= _WRITE_IN_CALLER_MAX
        if write_here:
            self._storage.write(stored_file.uuid, data)
        self._flusher.submit(self._store_file, stored_file, data, write=not write_here)
        return stored_file

    def _new_uuid(self, data: bytes, *, alone: bool) -> str:
        """A uuid for the file of ``data``. When no other instance is being stored, the storage
        is told its size: it may have a zero-filled file of that size ready, which makes the
        ``fsync`` shorter (``storage/reservations.py``). Under concurrent uploads it is not told:
        making those files costs the disk and the CPU more than a shared flush gains."""
        if self._options.compress or not alone:
            return self._storage.new_uuid()
        return self._storage.new_uuid(len(data))

    def _store_file(self, stored_file: _StoredFile, data: bytes, *, write: bool) -> None:
        """Describes (hashes, compresses), writes unless it is written already, and flushes one
        file; settles its futures, never raises, and leaves no file if it fails."""
        if not stored_file.durable.set_running_or_notify_cancel():
            return  # given up before it started
        try:
            stored, attachment = encode_attachment(
                ContentType.Dicom, data, compress=self._options.compress, uuid=stored_file.uuid
            )
            stored_file.described.set_result(attachment)
            if write:
                self._storage.write(stored_file.uuid, stored)
            self._storage.sync([stored_file.uuid])
        except BaseException as exc:
            self._storage.remove(stored_file.uuid)
            if not stored_file.described.done():
                stored_file.described.set_exception(exc)
            stored_file.durable.set_exception(exc)
            return
        stored_file.durable.set_result(None)

    def _commit(self, prepared: _Prepared) -> Future[StoreOutcome]:
        """Submits the index rows; the file goes again if they are not committed (whoever waits
        for the outcome, even a caller that gave up: a cancelled upload leaves no orphan)."""
        committed = self._committer.submit(prepared.new_instance(), prepared.stored_file)

        def settle(future: Future[StoreOutcome]) -> None:
            if (
                future.cancelled()
                or future.exception() is not None
                or future.result().already_stored
            ):
                self._discard(prepared.stored_file)

        committed.add_done_callback(settle)
        return committed

    def _refusal(
        self, parsed: ParsedInstance, origin: Origin, *, look_up: bool = True
    ) -> StoreResult | None:
        for accept in self.filters:
            if not accept(parsed, origin):
                return StoreResult(StoreStatus.FilteredOut, parsed.ids)
        # A shortcut for re-sent instances (no commit to wait for); the index transaction
        # checks again, for two copies arriving at once.
        if (
            look_up
            and not self._options.overwrite
            and self._index.lookup(parsed.ids.instance) is not None
        ):
            return StoreResult(StoreStatus.AlreadyStored, parsed.ids)
        return None

    def _discard(self, stored_file: _StoredFile) -> None:
        """Removes a file stored for nothing: at once if its worker has not started (it may
        have been written already), else once the worker is done, without waiting for it."""
        if stored_file.durable.cancel():
            self._storage.remove(stored_file.uuid)
            return
        stored_file.durable.add_done_callback(lambda _: self._storage.remove(stored_file.uuid))

    def _finish(self, prepared: _Prepared, outcome: StoreOutcome) -> StoreResult:
        self._metrics.observe_store_dicom((time.perf_counter() - prepared.started) * 1000)
        if outcome.already_stored:
            return StoreResult(StoreStatus.AlreadyStored, prepared.parsed.ids)
        origin = prepared.origin
        self._bus.publish(
            InstanceStored(prepared.parsed.ids.instance, origin.kind, origin.remote_aet)
        )
        return StoreResult(StoreStatus.Success, prepared.parsed.ids)

    def _after_commit(self, done: list[tuple[NewInstance, StoreOutcome]]) -> None:
        """Runs on the committer thread once a batch is durable."""
        self._metrics.observe_max("obelisk_group_commit_batch_size", len(done))
        now = now_iso()
        for new, outcome in done:
            for uuid in outcome.replaced_uuids:
                self._storage.remove(uuid)
            if outcome.already_stored:
                continue
            self._bus.publish(
                ResourceChanged(ChangeType.NewInstance, Level.INSTANCE, new.public_ids[3], now)
            )
            for level, change in (
                (Level.SERIES, ChangeType.NewSeries),
                (Level.STUDY, ChangeType.NewStudy),
                (Level.PATIENT, ChangeType.NewPatient),
            ):
                if level in outcome.created:
                    self._bus.publish(ResourceChanged(change, level, new.public_ids[level], now))
            if outcome.completed_series:
                self._bus.publish(
                    ResourceChanged(
                        ChangeType.CompletedSeries, Level.SERIES, new.public_ids[2], now
                    )
                )
        if self._options.max_storage_size_mb or self._options.max_patient_count:
            self._recycle(keep=done[-1][0].public_ids[0])

    def _recycle(self, keep: str) -> None:
        """Deletes the oldest unprotected patients while a storage limit is exceeded."""
        if self._delete_patient is None:
            return
        max_bytes = self._options.max_storage_size_mb * 1024 * 1024
        max_patients = self._options.max_patient_count
        while True:
            totals = self._index.totals()
            too_big = bool(max_bytes) and totals.compressed_size > max_bytes
            too_many = bool(max_patients) and totals.patients > max_patients
            if not (too_big or too_many):
                return
            victim = self._index.oldest_unprotected_patient(exclude=keep)
            if victim is None:
                log.warning("Storage limit exceeded, but every other patient is protected")
                return
            log.info("Recycling patient %s to honour the storage limits", victim.public_id)
            self._delete_patient(victim.public_id)


def _series_metadata(parsed: ParsedInstance, origin: Origin) -> dict[int, str]:
    metadata = {int(MetadataType.RemoteAET): origin.remote_aet}
    expected = expected_instances(parsed.main_tags.get(Level.SERIES, {}))
    if expected is not None:
        metadata[int(MetadataType.ExpectedNumberOfInstances)] = str(expected)
    return metadata


def _instance_metadata(parsed: ParsedInstance, origin: Origin) -> dict[int, str]:
    metadata = {
        MetadataType.ReceptionDate: now_iso(),
        MetadataType.RemoteAET: origin.remote_aet,
        MetadataType.Origin: origin.kind,
        MetadataType.TransferSyntax: parsed.transfer_syntax,
        MetadataType.SopClassUid: parsed.sop_class_uid,
    }
    if parsed.index_in_series is not None:
        metadata[MetadataType.IndexInSeries] = str(parsed.index_in_series)
    if origin.kind in ("RestApi", "DicomProtocol"):
        metadata[MetadataType.RemoteIP] = origin.remote_ip
    if origin.kind == "RestApi":
        metadata[MetadataType.HttpUsername] = origin.http_username
    if origin.kind == "DicomProtocol":
        metadata[MetadataType.CalledAET] = origin.called_aet
    if parsed.pixel_data_offset is not None:
        metadata[MetadataType.PixelDataOffset] = str(parsed.pixel_data_offset)
    return {int(k): v for k, v in metadata.items()}
