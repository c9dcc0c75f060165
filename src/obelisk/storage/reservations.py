"""Empty files made ahead of time, off the request path, for blobs about to be written.

On the disks we measured, creating a file costs 0.3–1 ms and creating its two fan-out folders
another ~1.5 ms, all of it inside the kernel. Done while an instance is being received, that
time adds to the latency of every C-STORE and upload. A background thread therefore keeps a few
uuids ready: their folders exist and an empty file waits under ``.reserved/``; writing the blob
is then a ``rename`` (~15 µs) into its final place and a write.

Each process reserves in its own sub-folder, so replicas sharing a storage area never take each
other's files. A clean stop removes them; a crash leaves at most a handful of empty files there,
and sub-folders untouched for an hour are removed when a storage area opens.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import shutil
import threading
import time
import uuid as uuid_module
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("obelisk.storage")

#: Files kept ready: enough for a burst of concurrent uploads between two refills.
DEFAULT_AHEAD = 16
#: Sub-folders of dead processes older than this are removed when a storage area opens.
_STALE_SECONDS = 3600.0


class BlobReservations:
    def __init__(
        self,
        root: Path,
        make_folder: Callable[[str], None],
        *,
        ahead: int = DEFAULT_AHEAD,
    ) -> None:
        """``make_folder(uuid)`` creates the final folder of a blob (the storage's layout)."""
        self.base = root / ".reserved"
        self.folder = self.base / f"{os.getpid()}-{secrets.token_hex(4)}"
        self._make_folder = make_folder
        self._ahead = ahead
        self._ready: queue.SimpleQueue[str] = queue.SimpleQueue()
        #: Files ready or being made; the filler wakes only once half of them are taken (one
        #: wake-up per few blobs: thread hand-offs cost more CPU than the files here).
        self._counted = 0
        self._low = threading.Condition()
        self._closed = False
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
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
        shutil.rmtree(self.folder, ignore_errors=True)

    def take(self) -> str:
        """A uuid whose empty file and folder are ready, or a plain new one if none is."""
        if self._closed:
            return str(uuid_module.uuid4())
        self._start()
        try:
            uuid = self._ready.get_nowait()
        except queue.Empty:
            return str(uuid_module.uuid4())
        with self._low:
            self._counted -= 1
            if self._counted <= self._ahead // 2:
                self._low.notify()
        return uuid

    def place(self, uuid: str, target: Path) -> bool:
        """Moves the reserved empty file of ``uuid`` to ``target``; ``False`` if there is none
        (not reserved, or its folder was pruned meanwhile: the caller creates the file)."""
        reserved = self.folder / uuid
        try:
            os.rename(reserved, target)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                reserved.unlink()
            return False
        return True

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
                while self._counted > self._ahead // 2 and not self._closed:
                    self._low.wait()
                if self._closed:
                    return
                wanted = self._ahead - self._counted
                self._counted = self._ahead
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
                    log.debug("Cannot reserve a file in the storage area: %s", exc)
                    with self._low:
                        self._counted -= wanted - made
                    time.sleep(1.0)
                    break
                self._ready.put(uuid)

    def _remove_stale(self) -> None:
        try:
            folders = list(self.base.iterdir())
        except OSError:
            return
        now = time.time()
        for folder in folders:
            with contextlib.suppress(OSError):
                if now - folder.stat().st_mtime > _STALE_SECONDS:
                    shutil.rmtree(folder, ignore_errors=True)
