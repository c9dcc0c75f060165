"""The storage area protocol, against the filesystem and memory implementations."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from obelisk.errors import InexistentItem, ObeliskError
from obelisk.storage import FilesystemStorage, MemoryStorage, StorageArea

UUID = "abcdef01-2345-6789-abcd-ef0123456789"
OTHER = "ab99cd00-0000-0000-0000-000000000000"


@pytest.fixture(params=["filesystem", "filesystem-syncdirs", "filesystem-nofsync", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageArea]:
    if request.param == "memory":
        yield MemoryStorage()
    else:
        yield FilesystemStorage(
            tmp_path / "storage",
            fsync=request.param != "filesystem-nofsync",
            sync_directories=request.param == "filesystem-syncdirs",
        )


def test_create_read_and_size(storage: StorageArea) -> None:
    data = bytes(range(256)) * 10
    storage.create(UUID, data)
    assert storage.exists(UUID)
    assert storage.read(UUID) == data
    assert storage.size(UUID) == len(data)
    assert not storage.exists(OTHER)


def test_empty_blob(storage: StorageArea) -> None:
    storage.create(UUID, b"")
    assert storage.exists(UUID)
    assert storage.read(UUID) == b""
    assert storage.size(UUID) == 0
    assert list(storage.open_chunks(UUID)) == []


def test_create_accepts_any_bytes_like(storage: StorageArea) -> None:
    storage.create(UUID, memoryview(bytearray(b"view")))  # type: ignore[arg-type]
    assert storage.read(UUID) == b"view"


def test_create_again_replaces(storage: StorageArea) -> None:
    storage.create(UUID, b"first version, longer")
    storage.create(UUID, b"second")
    assert storage.read(UUID) == b"second"


def test_read_range(storage: StorageArea) -> None:
    storage.create(UUID, b"0123456789")
    assert storage.read_range(UUID, 0, 4) == b"0123"
    assert storage.read_range(UUID, 3, 7) == b"3456"
    assert storage.read_range(UUID, 8, 100) == b"89"
    assert storage.read_range(UUID, 5, 5) == b""
    assert storage.read_range(UUID, 20, 30) == b""


@pytest.mark.parametrize("chunk_size", [1, 3, 10, 4096])
def test_open_chunks(storage: StorageArea, chunk_size: int) -> None:
    data = b"0123456789"
    storage.create(UUID, data)
    chunks = list(storage.open_chunks(UUID, chunk_size))
    assert b"".join(chunks) == data
    assert all(len(c) == chunk_size for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= chunk_size


def test_remove(storage: StorageArea) -> None:
    storage.create(UUID, b"data")
    storage.create(OTHER, b"other")
    storage.remove(UUID)
    assert not storage.exists(UUID)
    assert storage.read(OTHER) == b"other"
    storage.remove(UUID)  # removing a missing blob is not an error
    storage.create(UUID, b"again")  # and the same uuid can be written again
    assert storage.read(UUID) == b"again"


@pytest.mark.parametrize("operation", ["read", "read_range", "open_chunks", "size"])
def test_missing_blob_is_an_inexistent_item(storage: StorageArea, operation: str) -> None:
    calls = {
        "read": lambda: storage.read(UUID),
        "read_range": lambda: storage.read_range(UUID, 0, 10),
        "open_chunks": lambda: storage.open_chunks(UUID),
        "size": lambda: storage.size(UUID),
    }
    with pytest.raises(InexistentItem):
        calls[operation]()


def test_list_uuids(storage: StorageArea) -> None:
    assert list(storage.list_uuids()) == []
    storage.create(UUID, b"a")
    storage.create(OTHER, b"b")
    assert sorted(storage.list_uuids()) == sorted([UUID, OTHER])


def test_concurrent_writers(storage: StorageArea) -> None:
    uuids = [f"{n:08x}-0000-0000-0000-000000000000" for n in range(64)]

    def write(start: int) -> None:
        for uuid in uuids[start::4]:
            storage.create(uuid, uuid.encode())
            storage.remove(uuid) if uuid.startswith("0000000f") else None

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for uuid in uuids:
        if uuid.startswith("0000000f"):
            assert not storage.exists(uuid)
        else:
            assert storage.read(uuid) == uuid.encode()


# -- the filesystem layout -------------------------------------------------------------------


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_orthanc_fan_out_layout(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path)
    storage.create(UUID, b"x")
    assert _files(tmp_path) == [f"ab/cd/{UUID}"]
    assert (tmp_path / "ab" / "cd" / UUID).read_bytes() == b"x"
    assert storage.path(UUID) == tmp_path / "ab" / "cd" / UUID


def test_existing_orthanc_files_are_readable(tmp_path: Path) -> None:
    (tmp_path / "ab" / "cd").mkdir(parents=True)
    (tmp_path / "ab" / "cd" / UUID).write_bytes(b"written by Orthanc")
    storage = FilesystemStorage(tmp_path)
    assert storage.read(UUID) == b"written by Orthanc"
    assert list(storage.list_uuids()) == [UUID]


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path)
    for n in range(20):
        storage.create(f"abcd{n:04d}-0000-0000-0000-000000000000", b"data" * n)
    assert all(not name.split("/")[-1].startswith(".") for name in _files(tmp_path))
    assert len(_files(tmp_path)) == 20


def test_failed_write_leaves_neither_blob_nor_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FilesystemStorage(tmp_path)
    storage.create(OTHER, b"kept")

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(ObeliskError) as raised:
        storage.create(UUID, b"lost")
    monkeypatch.undo()
    assert raised.value.code.name == "FullStorage"
    assert not storage.exists(UUID)
    assert _files(tmp_path) == [f"ab/99/{OTHER}"]


def test_a_failed_write_keeps_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FilesystemStorage(tmp_path)
    storage.create(UUID, b"previous")

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(ObeliskError):
        storage.create(UUID, b"next")
    monkeypatch.undo()
    assert storage.read(UUID) == b"previous"
    assert _files(tmp_path) == [f"ab/cd/{UUID}"]


def test_remove_prunes_empty_folders(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path)
    storage.create(UUID, b"a")
    storage.create(OTHER, b"b")  # same ab/ folder, another second level
    storage.remove(UUID)
    assert not (tmp_path / "ab" / "cd").exists()
    assert (tmp_path / "ab" / "cd").parent.exists()
    storage.remove(OTHER)
    assert not (tmp_path / "ab").exists()
    storage.create(UUID, b"again")  # folders come back on demand
    assert storage.read(UUID) == b"again"


@pytest.mark.parametrize("bad", ["", "abc", "../../etc/passwd", "ab/cd/ef", ".hidden-uuid"])
def test_bad_uuids_never_escape_the_root(tmp_path: Path, bad: str) -> None:
    storage = FilesystemStorage(tmp_path / "root")
    with pytest.raises(InexistentItem):
        storage.read(bad)
    with pytest.raises(InexistentItem):
        storage.create(bad, b"x")


def test_creates_and_removes_racing_in_one_folder(tmp_path: Path) -> None:
    """``remove`` prunes folders that concurrent ``create`` calls are about to use."""
    storage = FilesystemStorage(tmp_path, fsync=False)
    errors: list[BaseException] = []

    def churn(worker: int) -> None:
        uuid = f"abcd{worker:04d}-0000-0000-0000-000000000000"
        try:
            for round_number in range(300):
                storage.create(uuid, b"%d" % round_number)
                assert storage.read(uuid) == b"%d" % round_number
                storage.remove(uuid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _files(tmp_path) == []


# -- write + sync: blobs made durable in batches ------------------------------------------------


def test_write_then_sync(storage: StorageArea) -> None:
    uuids = [f"{n:04x}ab00-0000-0000-0000-000000000000" for n in range(20)]
    for uuid in uuids:
        storage.write(uuid, uuid.encode() * 3)
    storage.sync(uuids)
    assert all(storage.read(uuid) == uuid.encode() * 3 for uuid in uuids)
    assert sorted(storage.list_uuids()) == sorted(uuids)
    storage.sync([])


def test_write_never_replaces_a_blob(storage: StorageArea) -> None:
    storage.create(UUID, b"precious")
    with pytest.raises(ObeliskError):
        storage.write(UUID, b"other")
    assert storage.read(UUID) == b"precious"


def test_sync_of_a_missing_blob(storage: StorageArea) -> None:
    storage.write(UUID, b"here")
    with pytest.raises(InexistentItem):
        storage.sync([UUID, OTHER])


def test_failed_write_leaves_no_partial_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FilesystemStorage(tmp_path)
    storage.create(OTHER, b"kept")

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(ObeliskError) as raised:
        storage.write(UUID, b"lost")
    monkeypatch.undo()
    assert raised.value.code.name == "FullStorage"
    assert _files(tmp_path) == [f"ab/99/{OTHER}"]


def test_blobs_written_under_new_uuids(storage: StorageArea) -> None:
    uuids = [storage.new_uuid() for _ in range(40)]  # more than are ever made ahead
    assert len(set(uuids)) == 40
    for number, uuid in enumerate(uuids):
        storage.write(uuid, f"blob {number}".encode())
    storage.sync(uuids)
    assert [storage.read(uuid) for uuid in uuids] == [f"blob {n}".encode() for n in range(40)]
    assert set(storage.list_uuids()) == set(uuids)


def _wait_for_reserved(storage: FilesystemStorage, count: int) -> list[Path]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reserved = list((storage.root / ".reserved").glob("*/*"))
        if len(reserved) >= count:
            return reserved
        time.sleep(0.01)
    raise AssertionError("no file was reserved ahead")


def test_files_are_made_ahead_and_moved_into_place(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "storage")
    storage.new_uuid()  # starts the reservations
    [reserved, *_] = _wait_for_reserved(storage, 1)
    uuid = reserved.name
    assert storage.path(uuid).parent.is_dir(), "its final folder is made ahead too"
    storage.write(uuid, b"DICM")
    storage.sync([uuid])
    assert not reserved.exists() and storage.read(uuid) == b"DICM"
    assert list(storage.list_uuids()) == [uuid]


def test_a_reserved_file_whose_folder_was_pruned_is_created_anyway(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "storage")
    storage.new_uuid()
    uuid = _wait_for_reserved(storage, 1)[0].name
    folder = storage.path(uuid).parent
    folder.rmdir()  # as a concurrent remove() of the last blob of that folder would
    storage.write(uuid, b"DICM")
    assert storage.read(uuid) == b"DICM"


def test_stale_reservations_of_dead_processes_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / "storage" / ".reserved" / "12345-deadbeef"
    stale.mkdir(parents=True)
    (stale / "11111111-2222-3333-4444-555555555555").touch()
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / "storage" / ".reserved" / "12346-cafecafe"
    fresh.mkdir()
    FilesystemStorage(tmp_path / "storage")
    assert not stale.exists() and fresh.exists()


def test_closing_removes_the_files_made_ahead_and_writes_still_work(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "storage")
    uuid = storage.new_uuid()
    _wait_for_reserved(storage, 1)
    storage.close()
    assert not list((storage.root / ".reserved").glob("*/*")), "no empty file left behind"
    storage.write(uuid, b"DICM")  # taken before the close: created the usual way
    late = storage.new_uuid()
    storage.write(late, b"DICM")
    assert storage.read(uuid) == storage.read(late) == b"DICM"


def _wait_for_sized(storage: FilesystemStorage, size: int) -> str:
    """Asks for ``size`` until a zero-filled file of it is ready; returns its uuid."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        uuid = storage.new_uuid(size)
        path = storage.path(uuid)
        if path.is_file() and path.stat().st_size > 0:
            return uuid
        time.sleep(0.01)
    raise AssertionError("no zero-filled file was made for that size")


def test_a_blob_of_an_announced_size_is_written_over_a_zero_filled_file(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "storage")
    data = os.urandom(10_000)
    uuid = _wait_for_sized(storage, len(data))
    path = storage.path(uuid)
    assert path.stat().st_size == 12_288, "rounded up to whole blocks"
    assert not any(path.read_bytes()), "zero-filled, at its final place"
    storage.write(uuid, data)
    storage.sync([uuid])
    assert storage.read(uuid) == data, "cut to the blob's size"
    # A blob of another size in the same block count fits one too, and a bigger one is fine.
    other = _wait_for_sized(storage, 9_000)
    storage.write(other, b"x" * 9_000)
    assert storage.read(other) == b"x" * 9_000
    bigger = storage.new_uuid(len(data))
    storage.write(bigger, data * 3)
    assert storage.read(bigger) == data * 3
    storage.close()
    assert set(storage.list_uuids()) == {uuid, other, bigger}, "unused ones go at close"


def test_zero_filled_files_wait_until_no_blob_is_being_stored(tmp_path: Path) -> None:
    """Made while an upload waits for its own flush, they would share the disk with it."""
    storage = FilesystemStorage(tmp_path / "storage")
    reserved = tmp_path / "storage" / ".reserved"
    with storage.storing():
        for _ in range(2):  # the second request in a row for a size has files of it made
            storage.new_uuid(20_000)
        time.sleep(0.3)
        listings = list(reserved.glob("*/sized"))
        assert not any(p.read_text().split() for p in listings), "none made meanwhile"
    uuid = _wait_for_sized(storage, 20_000)
    assert storage.path(uuid).stat().st_size == 20_480
    storage.close()


def test_empty_files_are_still_made_while_a_blob_is_being_stored(tmp_path: Path) -> None:
    """Only zero-filled files wait: under uploads that never pause, the cheap empty files must
    keep coming, or every blob would create its own file and folders on the request path."""
    storage = FilesystemStorage(tmp_path / "storage")
    reserved = tmp_path / "storage" / ".reserved"

    def take_a_reserved_one() -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(reserved.glob(f"*/{storage.new_uuid()}")):
                return True
            time.sleep(0.01)
        return False

    with storage.storing():
        for _ in range(2):  # a size is wanted: its files wait for the end of the bracket
            storage.new_uuid(20_000)
        assert take_a_reserved_one(), "the first empty files"
        time.sleep(0.1)  # the filler has moved on to the zero-filled files
        for _ in range(20):  # every empty file made ahead is taken
            storage.new_uuid()
        assert take_a_reserved_one(), "empty files made again while a blob is being stored"
    storage.close()


def test_storing_brackets_nest_and_are_harmless_without_reservations(
    storage: StorageArea,
) -> None:
    with storage.storing(), storage.storing():
        uuid = storage.new_uuid(5)
        storage.write(uuid, b"12345")
        storage.sync([uuid])
    assert storage.read(uuid) == b"12345"


def test_zero_filled_files_left_by_a_dead_process_are_removed_unless_written(
    tmp_path: Path,
) -> None:
    root = tmp_path / "storage"
    dead = FilesystemStorage(root)  # never closed: as a process killed while receiving
    written = _wait_for_sized(dead, 5_000)
    dead.write(written, b"\x00" * 128 + b"DICM" + b"\x01" * 4_868)
    deadline = time.monotonic() + 10
    [folder] = (root / ".reserved").iterdir()
    listed: list[str] = []
    while time.monotonic() < deadline:  # more are made ahead
        listed = (folder / "sized").read_text().split()
        if len(listed) >= 3 and all(dead.path(u).is_file() for u in listed):
            break
        time.sleep(0.05)
    unused = [u for u in listed if u != written]
    assert unused and all(not any(dead.path(u).read_bytes()) for u in unused)
    old = time.time() - 2 * 3600
    os.utime(folder, (old, old))
    FilesystemStorage(root)  # an hour later, another process opens the storage area
    assert not folder.exists()
    assert not any(dead.path(u).exists() for u in unused), "unwritten zero-filled files go"
    assert dead.read(written)[128:132] == b"DICM", "a written blob stays"
