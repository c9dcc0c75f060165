"""Files in Orthanc's fan-out layout: ``ab/cd/abcd…`` under the storage directory.

``create`` is atomic and durable: a temporary file in the target folder, ``fsync``, ``rename``;
a crash leaves either the whole blob or none. ``write`` + ``sync`` split that for batches: files
written under their final names, then one ``fdatasync`` each. As Orthanc does, removing a blob
also removes its two folders once they are empty.

With ``fsync`` (Orthanc's ``SyncStorageArea``, on by default) the file's bytes are on disk when
``sync``/``create`` return. On journaling filesystems (ext4, XFS) that commit also carries the new
directory entry; ``sync_directories`` adds an ``fsync`` of every folder that got a new name, for
filesystems that need it. It costs one more ``fsync`` per folder and batch.

Blobs written through :meth:`FilesystemStorage.write` get their uuid from :meth:`new_uuid`: their
folders and an empty file are made ahead by a background thread (``storage/reservations.py``), so
receiving an instance does not wait for the kernel to create them; given the blob's size, a
zero-filled file of that size may be ready, which halves the ``fdatasync`` that follows.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from obelisk.errors import FullStorage, InexistentItem, ObeliskError
from obelisk.storage.reservations import BlobReservations

#: Attempts at creating a blob whose folder a concurrent ``remove`` keeps pruning.
_FOLDER_ATTEMPTS = 10


class FilesystemStorage:
    def __init__(
        self, root: str | os.PathLike[str], *, fsync: bool = True, sync_directories: bool = False
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._sync_directories = fsync and sync_directories
        self._known_dirs: set[Path] = set()
        #: Folders that got a new sub-folder since the last ``sync`` (``sync_directories``).
        self._new_folder_parents: set[Path] = set()
        self._reservations = BlobReservations(
            self.root, lambda uuid: self._make_folder(self.path(uuid).parent), self.path
        )

    def close(self) -> None:
        self._reservations.close()

    def storing(self) -> AbstractContextManager[None]:
        return self._reservations.storing()

    def new_uuid(self, size: int | None = None) -> str:
        """A uuid for a blob about to be written, its folder and file made ahead if possible."""
        return self._reservations.take(size)

    def path(self, uuid: str) -> Path:
        if len(uuid) < 4 or "/" in uuid or "\\" in uuid or uuid.startswith("."):
            raise InexistentItem(f"Bad attachment uuid: {uuid!r}")
        return self.root / uuid[0:2] / uuid[2:4] / uuid

    def create(self, uuid: str, data: bytes) -> None:
        target = self.path(uuid)
        folder = target.parent
        # A unique name: concurrent writers of the same uuid must not share a temporary file.
        temporary = folder / f".{uuid}.{secrets.token_hex(4)}.tmp"
        try:
            fd = self._open_in_folder(temporary)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, target)
            if self._sync_directories:
                for parent in self._take_new_folder_parents() | {folder}:
                    _fsync_dir(parent)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise _write_error(exc) from exc

    def write(self, uuid: str, data: bytes) -> None:
        """Writes straight to the final name, without ``fsync`` (see :meth:`sync`).

        No temporary file is needed: until the index refers to the uuid, a partial file is an
        orphan that nobody reads. A blob never overwrites another: an existing uuid is an error.
        """
        target = self.path(uuid)
        try:
            reserved_size = self._reservations.place(uuid, target)
            if reserved_size is not None:
                fd = os.open(target, os.O_WRONLY)
            else:
                fd = self._open_in_folder(target)
        except OSError as exc:  # the file is not ours: leave it alone
            raise _write_error(exc) from exc
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if reserved_size and reserved_size != len(data):  # zero-filled, another size
                    os.ftruncate(fd, len(data))
            finally:
                os.close(fd)
        except OSError as exc:
            target.unlink(missing_ok=True)
            raise _write_error(exc) from exc

    def sync(self, uuids: Iterable[str]) -> None:
        if not self._fsync:
            for uuid in uuids:
                if not self.exists(uuid):
                    raise InexistentItem(f"Missing file in the storage area: {uuid}")
            return
        folders: set[Path] = set()
        try:
            for uuid in uuids:
                target = self.path(uuid)
                fd = os.open(target, os.O_RDONLY)
                try:
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
                folders.add(target.parent)
            if self._sync_directories:  # the new names must survive a power loss too
                for folder in folders | self._take_new_folder_parents():
                    _fsync_dir(folder)
        except FileNotFoundError as exc:
            raise InexistentItem(f"Missing file in the storage area: {exc.filename}") from exc
        except OSError as exc:
            raise _write_error(exc) from exc

    def _open_in_folder(self, path: Path) -> int:
        """Creates a new file (never an existing one), making its folders on the way (again, if
        a concurrent ``remove`` pruned them)."""
        folder = path.parent
        for attempt in range(_FOLDER_ATTEMPTS):
            last = attempt == _FOLDER_ATTEMPTS - 1
            try:
                self._make_folder(folder)
            except (FileNotFoundError, FileExistsError):
                # FileExistsError too: mkdir saw the folder, gone when it checked it.
                if last:
                    raise
                continue
            try:
                return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:  # the folder was pruned meanwhile
                self._known_dirs.discard(folder)
                if last:
                    raise
        raise AssertionError("unreachable")

    def _make_folder(self, folder: Path) -> None:
        """Creates a blob's folders, once: known ones are not asked of the kernel again."""
        if folder in self._known_dirs:
            return
        folder.mkdir(parents=True, exist_ok=True)
        if self._sync_directories:  # synced with the blobs, at the next sync
            self._new_folder_parents.update((folder.parent, self.root))
        self._known_dirs.add(folder)

    def _take_new_folder_parents(self) -> set[Path]:
        taken, self._new_folder_parents = self._new_folder_parents, set()
        return taken

    def read(self, uuid: str) -> bytes:
        try:
            return self.path(uuid).read_bytes()
        except FileNotFoundError as exc:
            raise InexistentItem(f"Missing file in the storage area: {uuid}") from exc

    def read_range(self, uuid: str, start: int, end: int) -> bytes:
        try:
            with open(self.path(uuid), "rb") as handle:
                handle.seek(start)
                return handle.read(max(0, end - start))
        except FileNotFoundError as exc:
            raise InexistentItem(f"Missing file in the storage area: {uuid}") from exc

    def open_chunks(self, uuid: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            handle = open(self.path(uuid), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError as exc:
            raise InexistentItem(f"Missing file in the storage area: {uuid}") from exc

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(chunk_size):
                    yield chunk

        return chunks()

    def remove(self, uuid: str) -> None:
        target = self.path(uuid)
        target.unlink(missing_ok=True)
        folder = target.parent
        self._known_dirs.discard(folder)
        # Not empty (or already gone) is the common case: nothing to do then.
        with contextlib.suppress(OSError):
            folder.rmdir()
            folder.parent.rmdir()

    def exists(self, uuid: str) -> bool:
        return self.path(uuid).is_file()

    def size(self, uuid: str) -> int:
        try:
            return self.path(uuid).stat().st_size
        except FileNotFoundError as exc:
            raise InexistentItem(f"Missing file in the storage area: {uuid}") from exc

    def list_uuids(self) -> Iterator[str]:
        """Every stored uuid (used by consistency checks, not on any hot path)."""
        for first in _entries(self.root):
            if len(first.name) == 2:
                for second in _entries(first):
                    for blob in _entries(second):
                        if not blob.name.startswith("."):
                            yield blob.name


def _entries(folder: Path) -> list[Path]:
    """The entries of a folder, none if ``remove`` just pruned it or it is a file."""
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _write_error(exc: OSError) -> ObeliskError:
    if exc.errno == errno.ENOSPC:
        return FullStorage(details=str(exc))
    return ObeliskError("Cannot write to the storage area", details=str(exc))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
