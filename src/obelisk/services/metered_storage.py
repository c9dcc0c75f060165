"""A storage area that times every call and counts bytes into :class:`~obelisk.metrics.Metrics`.

Wraps any :class:`~obelisk.storage.base.StorageArea` (Orthanc measures its default file system
storage the same way): ``create``/``write`` feed ``orthanc_storage_create_duration_ms`` and
``orthanc_storage_written_bytes``, reads feed ``orthanc_storage_read_duration_ms`` and
``orthanc_storage_read_bytes``, ``remove`` feeds ``orthanc_storage_remove_duration_ms``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from obelisk.metrics import Metrics
from obelisk.storage.base import StorageArea


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class MeteredStorage:
    def __init__(self, inner: StorageArea, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics

    def close(self) -> None:
        self.inner.close()

    def storing(self) -> AbstractContextManager[None]:
        return self.inner.storing()

    def new_uuid(self, size: int | None = None) -> str:
        return self.inner.new_uuid(size)

    def create(self, uuid: str, data: bytes) -> None:
        started = time.perf_counter()
        self.inner.create(uuid, data)
        self._metrics.observe_storage("create", _ms_since(started), len(data))

    def write(self, uuid: str, data: bytes) -> None:
        started = time.perf_counter()
        self.inner.write(uuid, data)
        self._metrics.observe_storage("create", _ms_since(started), len(data))

    def sync(self, uuids: Iterable[str]) -> None:
        self.inner.sync(uuids)

    def read(self, uuid: str) -> bytes:
        started = time.perf_counter()
        data = self.inner.read(uuid)
        self._metrics.observe_storage("read", _ms_since(started), len(data))
        return data

    def read_range(self, uuid: str, start: int, end: int) -> bytes:
        started = time.perf_counter()
        data = self.inner.read_range(uuid, start, end)
        self._metrics.observe_storage("read", _ms_since(started), len(data))
        return data

    def open_chunks(self, uuid: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        # Opened at once (a missing blob raises here, not on the first chunk); the duration
        # covers opening, the bytes are counted as the caller consumes them.
        started = time.perf_counter()
        chunks = self.inner.open_chunks(uuid, chunk_size)
        self._metrics.observe_storage("read", _ms_since(started))
        return self._counted(chunks)

    def _counted(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self._metrics.add("orthanc_storage_read_bytes", len(chunk))
            yield chunk

    def remove(self, uuid: str) -> None:
        started = time.perf_counter()
        self.inner.remove(uuid)
        self._metrics.observe_storage("remove", _ms_since(started))

    def exists(self, uuid: str) -> bool:
        return self.inner.exists(uuid)

    def size(self, uuid: str) -> int:
        return self.inner.size(uuid)

    def list_uuids(self) -> Iterator[str]:
        return self.inner.list_uuids()

    def __getattr__(self, name: str) -> Any:
        """Mechanism-specific extras of the wrapped area (a folder path, …) stay reachable."""
        return getattr(self.inner, name)
