"""An in-memory storage area for unit tests."""

from __future__ import annotations

import contextlib
import threading
import uuid as uuid_module
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager

from obelisk.errors import InexistentItem, ObeliskError


class MemoryStorage:
    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        pass

    def storing(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def new_uuid(self, size: int | None = None) -> str:
        return str(uuid_module.uuid4())

    def create(self, uuid: str, data: bytes) -> None:
        with self._lock:
            self._blobs[uuid] = bytes(data)

    def write(self, uuid: str, data: bytes) -> None:
        with self._lock:
            if uuid in self._blobs:
                raise ObeliskError(
                    "Cannot write to the storage area", details=f"{uuid} already exists"
                )
            self._blobs[uuid] = bytes(data)

    def sync(self, uuids: Iterable[str]) -> None:
        """Nothing to flush in memory; the blobs must exist, though."""
        for uuid in uuids:
            if uuid not in self._blobs:
                raise InexistentItem(f"Missing file in the storage area: {uuid}")

    def read(self, uuid: str) -> bytes:
        try:
            return self._blobs[uuid]
        except KeyError as exc:
            raise InexistentItem(f"Missing file in the storage area: {uuid}") from exc

    def read_range(self, uuid: str, start: int, end: int) -> bytes:
        return self.read(uuid)[start:end]

    def open_chunks(self, uuid: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        data = self.read(uuid)
        return iter([data[i : i + chunk_size] for i in range(0, len(data), chunk_size)])

    def remove(self, uuid: str) -> None:
        with self._lock:
            self._blobs.pop(uuid, None)

    def exists(self, uuid: str) -> bool:
        return uuid in self._blobs

    def size(self, uuid: str) -> int:
        return len(self.read(uuid))

    def list_uuids(self) -> Iterator[str]:
        return iter(list(self._blobs))
