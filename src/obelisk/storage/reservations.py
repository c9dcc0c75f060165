"""Empty files made ahead of time, off the request path, for blobs about to be written.

On the disks we measured, creating a file costs 0.3–1 ms and creating its two fan-out folders
another ~1.5 ms, all of it inside the kernel. Done while an instance is being received, that
time adds to the latency of every C-STORE and upload. A background thread therefore keeps a few
uuids ready: their folders exist and an empty file waits under ``.reserved/``; writing the blob
is then a ``rename`` (~15 µs) into its final place and a write.

Asked for a size (:meth:`BlobReservations.take`), it keeps a few **zero-filled files of that size
(rounded up to whole 4 KiB blocks) at their final place**, flushed: writing a blob over one
allocates nothing and its directory entry is already on disk, so the ``fdatasync`` that makes the
blob durable writes its data and the inode's new size only — about half the time of a new file's
on the ext4 disks measured (0.5 vs 1.1 ms for 130 KB). The files of one series have nearly one
size, so one size is kept at a time: it changes after two requests in a row for another size.
Blobs over 1 MiB get none (zeroing them costs more than it saves). Those files are made only
while no blob is being stored (:meth:`BlobReservations.storing`, from the uuid to the index
commit): flushed at the same time, they lengthened the ``fsync`` an upload waits for by a
third, and the commit after it.

Each process reserves in its own sub-folder, so replicas sharing a storage area never take each
other's files. A clean stop removes them; a crash leaves at most a handful of empty files there
and of zero-filled ones in the storage layout (listed in the sub-folder's ``sized`` file), and
sub-folders untouched for an hour are removed, with the zero-filled files they list that are
still all zeros, when a storage area opens.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import secrets
import shutil
import threading
import time
import uuid as uuid_module
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("obelisk.storage")

#: Files kept ready: enough for a burst of concurrent uploads between two refills.
DEFAULT_AHEAD = 16
#: Zero-filled files of the wanted size kept ready.
SIZED_AHEAD = 4
#: Zero-filled files are whole multiples of this (the filesystem's usual block size).
_BLOCK = 4096
#: Largest blob for which a zero-filled file is prepared.
MAX_SIZED = 1 << 20
#: Sub-folders of dead processes older than this are removed when a storage area opens.
_STALE_SECONDS = 3600.0


class BlobReservations:
    def __init__(
        self,
        root: Path,
        make_folder: Callable[[str], None],
        final_path: Callable[[str], Path],
        *,
        ahead: int = DEFAULT_AHEAD,
    ) -> None:
        """``make_folder(uuid)`` creates the final folder of a blob and ``final_path(uuid)``
        names its file (the storage's layout)."""
        self.base = root / ".reserved"
        self.folder = self.base / f"{os.getpid()}-{secrets.token_hex(4)}"
        self._make_folder = make_folder
        self._final_path = final_path
        self._ahead = ahead
        self._ready: queue.SimpleQueue[str] = queue.SimpleQueue()
        #: Files ready or being made; the filler wakes only once half of them are taken (one
        #: wake-up per few blobs: thread hand-offs cost more CPU than the files here).
        self._counted = 0
        self._low = threading.Condition()
        self._closed = False
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: The size of the zero-filled files made (0: none), those ready, and every such file
        #: not yet written over (ready, or of a size no longer wanted and about to go).
        self._sized = 0
        self._sized_ready: collections.deque[str] = collections.deque()
        self._sized_files: dict[str, int] = {}
        self._unwanted: list[str] = []
        #: A size asked for once without a file ready: the second time in a row, it is made.
        self._missed = 0
        #: Blobs being stored: zero-filled files are made only between them, not to share the
        #: disk (and the GIL) with the flush and the commit that an upload is waiting for.
        self._storing = 0
        self._remove_stale()

    def close(self) -> None:
        """Stops making files and removes the ones not taken (their folders stay: cheap, and
        Orthanc's layout has empty ones too)."""
        with self._low:
            self._closed = True
            self._low.notify()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        with self._low:
            left, self._sized_files = list(self._sized_files), {}
            self._sized_ready.clear()
        for uuid in left:
            with contextlib.suppress(OSError):
                self._final_path(uuid).unlink()
        shutil.rmtree(self.folder, ignore_errors=True)

    def take(self, size: int | None = None) -> str:
        """A uuid whose file and folder are ready (a zero-filled file of ``size`` bytes at its
        final place if one is), or a plain new one if none is."""
        if self._closed:
            return str(uuid_module.uuid4())
        self._start()
        if size is not None and 0 < size <= MAX_SIZED:
            # Sizes of one series differ by a few bytes (UIDs of different lengths): a file
            # rounded up to whole blocks fits them all, cut to size without freeing a block.
            size = -(-size // _BLOCK) * _BLOCK
            with self._low:
                if size == self._sized and self._sized_ready:
                    uuid = self._sized_ready.popleft()
                    if len(self._sized_ready) <= SIZED_AHEAD // 2:
                        self._low.notify()
                    return uuid
                if size != self._sized:
                    if size == self._missed:  # twice in a row: make files of this size now
                        self._sized, self._missed = size, 0
                        self._unwanted.extend(self._sized_ready)
                        self._sized_ready.clear()
                        self._low.notify()
                    else:
                        self._missed = size
        try:
            uuid = self._ready.get_nowait()
        except queue.Empty:
            return str(uuid_module.uuid4())
        with self._low:
            self._counted -= 1
            if self._counted <= self._ahead // 2:
                self._low.notify()
        return uuid

    @contextlib.contextmanager
    def storing(self) -> Iterator[None]:
        """Brackets the storing of a blob: zero-filled files wait until none is being stored."""
        with self._low:
            self._storing += 1
        try:
            yield
        finally:
            with self._low:
                self._storing -= 1
                if not self._storing:
                    self._low.notify()

    def place(self, uuid: str, target: Path) -> int | None:
        """Puts the reserved file of ``uuid`` at ``target`` and returns its size (0: an empty
        file moved there, more: a zero-filled one already there); ``None`` if there is none
        (not reserved, or its folder was pruned meanwhile: the caller creates the file)."""
        with self._low:
            sized = self._sized_files.pop(uuid, None)
        if sized is not None:
            return sized
        reserved = self.folder / uuid
        try:
            os.rename(reserved, target)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                reserved.unlink()
            return None
        return 0

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._fill, name="obelisk-storage-reserve", daemon=True
                )
                thread.start()
                self._thread = thread

    def _fill(self) -> None:
        while True:
            with self._low:
                while not self._closed and not self._unwanted and not self._needs_filling():
                    self._low.wait()
                if self._closed:
                    return
                wanted = self._ahead - self._counted if self._counted <= self._ahead // 2 else 0
                self._counted += wanted
                unwanted, self._unwanted = self._unwanted, []
                for uuid in unwanted:
                    self._sized_files.pop(uuid, None)
            for uuid in unwanted:
                with contextlib.suppress(OSError):
                    self._final_path(uuid).unlink()
            for made in range(wanted):
                if self._closed:
                    return
                uuid = str(uuid_module.uuid4())
                try:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    self._make_folder(uuid)
                    os.close(
                        os.open(self.folder / uuid, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    )
                except OSError as exc:  # a full or read-only disk: writes will say so, not us
                    self._cannot_reserve(exc)
                    with self._low:
                        self._counted -= wanted - made
                    break
                self._ready.put(uuid)
            self._fill_sized()

    def _needs_filling(self) -> bool:
        return self._counted <= self._ahead // 2 or self._wants_sized()

    def _wants_sized(self) -> bool:
        """Whether a zero-filled file is to be made now (called with ``_low`` held): never while
        a blob is being stored, but empty files are still made then."""
        return self._sized > 0 and len(self._sized_ready) < SIZED_AHEAD and not self._storing

    def _fill_sized(self) -> None:
        """Makes zero-filled files of the wanted size, flushed with their folder entries."""
        zeros = b""
        while not self._closed:
            with self._low:
                if not self._wants_sized():
                    return
                size = self._sized
            if len(zeros) != size:
                zeros = bytes(size)
            uuid = str(uuid_module.uuid4())
            path = self._final_path(uuid)
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                with (self.folder / "sized").open("a", encoding="ascii") as listing:
                    listing.write(uuid + "\n")
                self._make_folder(uuid)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    os.write(fd, zeros)
                    os.fsync(fd)  # its data, inode and (a new file) folder entry
                finally:
                    os.close(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    path.unlink()
                self._cannot_reserve(exc)
                return
            with self._low:
                if size == self._sized and not self._closed:
                    self._sized_files[uuid] = size
                    self._sized_ready.append(uuid)
                    continue
            with contextlib.suppress(OSError):  # no longer wanted meanwhile
                path.unlink()

    def _cannot_reserve(self, exc: OSError) -> None:
        log.debug("Cannot reserve a file in the storage area: %s", exc)
        time.sleep(1.0)

    def _remove_stale(self) -> None:
        try:
            folders = list(self.base.iterdir())
        except OSError:
            return
        now = time.time()
        for folder in folders:
            with contextlib.suppress(OSError):
                if now - folder.stat().st_mtime > _STALE_SECONDS:
                    self._remove_unwritten(folder / "sized")
                    shutil.rmtree(folder, ignore_errors=True)

    def _remove_unwritten(self, listing: Path) -> None:
        """Removes the zero-filled files a dead process listed that nothing wrote over (a blob
        that was written has its bytes there; a DICOM file never is all zeros)."""
        try:
            uuids = listing.read_text(encoding="ascii").split()
        except OSError:
            return
        for uuid in uuids:
            with contextlib.suppress(OSError, ValueError):
                path = self._final_path(uuid)
                with path.open("rb") as handle:
                    data = handle.read(MAX_SIZED + 1)
                if data and len(data) <= MAX_SIZED and not any(data):
                    path.unlink()
