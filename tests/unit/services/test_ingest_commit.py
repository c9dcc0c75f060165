"""The group committer: one transaction per batch, retried when writers deadlock."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from obelisk.core.levels import Level
from obelisk.errors import BadFileFormat, ErrorCode, ObeliskError
from obelisk.events import EventBus
from obelisk.index.sqlite import SqliteIndex
from obelisk.services.ingest import IngestOptions, IngestService, Origin, StoreStatus
from obelisk.storage.memory import MemoryStorage
from tests.dicom_factory import make_dicom


class ConflictingIndex(SqliteIndex):
    """An index whose first ``conflicts`` write transactions fail as a deadlock would."""

    def __init__(self, conflicts: int) -> None:
        self.conflicts = self.attempts = 0
        super().__init__(":memory:")  # creates the schema through write()
        self.conflicts, self.attempts = conflicts, 0

    @contextmanager
    def write(self) -> Iterator[Any]:
        self.attempts += 1
        if self.conflicts:
            self.conflicts -= 1
            raise ObeliskError("deadlock", code=ErrorCode.DatabaseCannotSerialize)
        with super().write() as writer:
            yield writer


def _ingest(index: SqliteIndex) -> IngestService:
    return IngestService(index, MemoryStorage(), EventBus(), IngestOptions())


def test_a_conflicting_transaction_is_tried_again() -> None:
    index = ConflictingIndex(conflicts=2)
    ingest = _ingest(index)
    try:
        result = ingest.store(make_dicom(), Origin("RestApi"))
    finally:
        ingest.close()
    assert result.status is StoreStatus.Success
    assert index.attempts == 3
    assert index.lookup(result.ids.instance) is not None


def test_a_lasting_conflict_fails_the_instance_and_stores_nothing() -> None:
    index = ConflictingIndex(conflicts=100)
    ingest = _ingest(index)
    try:
        with pytest.raises(ObeliskError):
            ingest.store(make_dicom(), Origin("RestApi"))
    finally:
        ingest.close()
    assert index.totals().instances == 0


class GatedStorage(MemoryStorage):
    """A storage area whose flushes wait for ``release``; ``fail_for`` makes one flush fail."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.flushing = threading.Event()
        self.fail_for: bytes | None = None

    def write(self, uuid: str, data: bytes) -> None:
        super().write(uuid, data)
        if self.fail_for is not None and data == self.fail_for:
            self._failing = uuid

    def sync(self, uuids: Iterable[str]) -> None:
        self.flushing.set()
        assert self.release.wait(10)
        if any(uuid == getattr(self, "_failing", None) for uuid in uuids):
            raise ObeliskError("the disk is gone")
        super().sync(uuids)


def test_the_index_commits_only_once_the_file_is_durable(tmp_path: Path) -> None:
    index, storage = SqliteIndex(tmp_path / "index.db"), GatedStorage()
    ingest = IngestService(index, storage, EventBus(), IngestOptions())
    data = make_dicom()
    try:
        with ThreadPoolExecutor(1) as pool:
            stored = pool.submit(ingest.store, data, Origin("RestApi"))
            assert storage.flushing.wait(10)
            time.sleep(0.2)  # the committer has had time to write the rows, not to commit them
            assert not stored.done()
            assert index.totals().instances == 0
            storage.release.set()
            result = stored.result(10)
    finally:
        ingest.close()
    assert result.status is StoreStatus.Success
    [attachment] = index.attachments(index.lookup(result.ids.instance).internal_id)  # type: ignore[union-attr]
    assert storage.read(attachment.uuid) == data
    # The committer hashed the file while it was being flushed.
    assert attachment.uncompressed_md5 == attachment.compressed_md5 == hashlib.md5(data).hexdigest()
    assert attachment.uncompressed_size == attachment.compressed_size == len(data)


def test_a_file_that_cannot_be_flushed_fails_alone(tmp_path: Path) -> None:
    index, storage = SqliteIndex(tmp_path / "index.db"), GatedStorage()
    ingest = IngestService(index, storage, EventBus(), IngestOptions())
    files = [make_dicom(sop_uid=f"1.2.3.4.{n}", instance_number=n) for n in range(1, 5)]
    storage.fail_for = files[2]
    try:
        with ThreadPoolExecutor(4) as pool:
            stores = [pool.submit(ingest.store, data, Origin("RestApi")) for data in files]
            assert storage.flushing.wait(10)
            time.sleep(0.1)  # several instances join one transaction
            storage.release.set()
            outcomes = [future.exception(10) or future.result() for future in stores]
    finally:
        ingest.close()
    assert isinstance(outcomes[2], ObeliskError)
    assert [o.status for i, o in enumerate(outcomes) if i != 2] == [StoreStatus.Success] * 3  # type: ignore[union-attr]
    assert index.totals().instances == 3
    assert len(list(storage.list_uuids())) == 3, "the failed file is not left behind"


def test_a_cancelled_upload_leaves_no_file_and_the_committer_goes_on(tmp_path: Path) -> None:
    index, storage = SqliteIndex(tmp_path / "index.db"), GatedStorage()
    ingest = IngestService(index, storage, EventBus(), IngestOptions())

    async def cancelled_upload() -> None:
        task = asyncio.ensure_future(ingest.store_async(make_dicom(), Origin("RestApi")))
        while len(list(storage.list_uuids())) < 2:  # its file is written, its rows queued
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    # The committer is kept busy by a first upload, so the second is cancelled while queued.
    pool = ThreadPoolExecutor(2)
    try:
        first = pool.submit(ingest.store, make_dicom(sop_uid="1.2.3.4.9"), Origin("RestApi"))
        asyncio.run(cancelled_upload())
        storage.release.set()
        assert first.result(10).status is StoreStatus.Success
        after = pool.submit(ingest.store, make_dicom(sop_uid="1.2.3.4.10"), Origin("RestApi"))
        assert after.result(10).status is StoreStatus.Success, "the committer still works"
    finally:
        pool.shutdown(wait=False)
    ingest.close()
    stored = {a.uuid for r in index.list_internal_ids(Level.INSTANCE) for a in index.attachments(r)}
    assert set(storage.list_uuids()) == stored, "no file without its index row"


class RemoteLikeIndex(SqliteIndex):
    """An index whose reads would cost a network round trip (as PostgreSQL's): counts them."""

    in_process = False

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.lookups = 0

    def lookup(self, public_id: str, level: Level | None = None) -> Any:
        self.lookups += 1
        return super().lookup(public_id, level)


def test_the_event_loop_does_not_read_a_remote_index_and_duplicates_leave_no_file(
    tmp_path: Path,
) -> None:
    index, storage = RemoteLikeIndex(tmp_path / "index.db"), MemoryStorage()
    ingest = IngestService(index, storage, EventBus(), IngestOptions())
    data = make_dicom()

    async def upload_twice() -> list[StoreStatus]:
        first = await ingest.store_async(data, Origin("RestApi"))
        second = await ingest.store_async(data, Origin("RestApi"))
        return [first.status, second.status]

    try:
        statuses = asyncio.run(upload_twice())
        ingest.store(data, Origin("DicomProtocol"))  # a thread may look it up
    finally:
        ingest.close()
    assert statuses == [StoreStatus.Success, StoreStatus.AlreadyStored]
    assert index.lookups == 1, "only the thread's store looked the instance up"
    deadline = time.monotonic() + 5
    while len(list(storage.list_uuids())) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # the duplicate's file goes once its write is over
    assert len(list(storage.list_uuids())) == 1


class SizeRecordingStorage(GatedStorage):
    """Records the sizes the ingest announces when it asks for a uuid."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int | None] = []

    def new_uuid(self, size: int | None = None) -> str:
        self.sizes.append(size)
        return super().new_uuid(size)


def test_a_lone_instance_announces_its_size_and_concurrent_ones_do_not(tmp_path: Path) -> None:
    """A lone upload may find a zero-filled file of its size ready (a shorter flush); under
    concurrent uploads the storage is not asked to make them."""
    index, storage = SqliteIndex(tmp_path / "index.db"), SizeRecordingStorage()
    ingest = IngestService(index, storage, EventBus(), IngestOptions())
    first, second = make_dicom(sop_uid="1.2.3.4.1"), make_dicom(sop_uid="1.2.3.4.2")
    try:
        with ThreadPoolExecutor(2) as pool:
            lone = pool.submit(ingest.store, first, Origin("RestApi"))
            assert storage.flushing.wait(10)  # the first one is being flushed
            concurrent = pool.submit(ingest.store, second, Origin("RestApi"))
            deadline = time.monotonic() + 10
            while len(storage.sizes) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            storage.release.set()
            assert lone.result(10).status is concurrent.result(10).status is StoreStatus.Success
    finally:
        ingest.close()
    assert storage.sizes == [len(first), None]


def test_a_file_that_is_not_dicom_writes_nothing(tmp_path: Path) -> None:
    index, storage = SqliteIndex(tmp_path / "index.db"), MemoryStorage()
    ingest = IngestService(index, storage, EventBus(), IngestOptions())
    try:
        with pytest.raises(BadFileFormat):
            asyncio.run(ingest.store_async(b"not a DICOM file" * 100, Origin("RestApi")))
    finally:
        ingest.close()
    assert list(storage.list_uuids()) == []


class BracketRecordingStorage(MemoryStorage):
    """Records whether a store is bracketed (``storing``) when each storage call happens, and
    how many instances the index holds when the bracket closes."""

    def __init__(self, index: SqliteIndex) -> None:
        super().__init__()
        self.index = index
        self.depth = 0
        self.seen: list[tuple[str, int]] = []

    @contextmanager
    def storing(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.seen.append(("closed with instances", self.index.totals().instances))
            self.depth -= 1

    def new_uuid(self, size: int | None = None) -> str:
        self.seen.append(("uuid in bracket", self.depth))
        return super().new_uuid(size)

    def sync(self, uuids: Iterable[str]) -> None:
        self.seen.append(("sync in bracket", self.depth))
        super().sync(uuids)


@pytest.mark.parametrize("entry", ["store", "store_async"])
def test_the_storage_hears_of_a_store_from_its_uuid_to_its_commit(
    tmp_path: Path, entry: str
) -> None:
    """The storage area defers its background work (zero-filled files) meanwhile."""
    index = SqliteIndex(tmp_path / "index.db")
    storage = BracketRecordingStorage(index)
    ingest = IngestService(index, storage, EventBus(), IngestOptions())
    try:
        if entry == "store":
            result = ingest.store(make_dicom(), Origin("RestApi"))
        else:
            result = asyncio.run(ingest.store_async(make_dicom(), Origin("RestApi")))
    finally:
        ingest.close()
    assert result.status is StoreStatus.Success
    assert storage.seen == [
        ("uuid in bracket", 1),
        ("sync in bracket", 1),
        ("closed with instances", 1),
    ]
    assert storage.depth == 0
