"""The storage area protocol."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol


class StorageArea(Protocol):
    """Stores opaque blobs under uuids. ``create`` is durable when it returns.

    A missing blob raises :class:`~obelisk.errors.InexistentItem` on ``read``, ``read_range``,
    ``open_chunks`` (at once, not on the first chunk) and ``size``.
    """

    def create(self, uuid: str, data: bytes) -> None: ...

    def close(self) -> None:
        """Releases what the storage area prepared ahead (its blobs stay)."""
        ...

    def new_uuid(self, size: int | None = None) -> str:
        """A fresh uuid for a blob about to be stored with :meth:`write` (a storage may prepare
        its place ahead of time, for a blob of ``size`` bytes when it is given)."""
        ...

    def storing(self) -> AbstractContextManager[None]:
        """Brackets the storing of one blob, from :meth:`new_uuid` until whatever refers to it
        is committed: what the storage area prepares in the background for later blobs waits
        meanwhile, not to compete for the disk with a caller that is waiting."""
        ...

    def write(self, uuid: str, data: bytes) -> None:
        """Stores a blob that is not durable yet: :meth:`sync` makes it so.

        Until then a crash may leave it truncated or missing, so nothing may refer to it before
        :meth:`sync` returns. This lets the ingest path flush many blobs in one go. Unlike
        :meth:`create`, it never replaces a blob: an existing uuid is an error.
        """
        ...

    def sync(self, uuids: Iterable[str]) -> None:
        """Makes blobs stored with :meth:`write` durable (each folder flushed once).

        A missing blob raises :class:`~obelisk.errors.InexistentItem`.
        """
        ...

    def read(self, uuid: str) -> bytes: ...

    def read_range(self, uuid: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the blob."""
        ...

    def open_chunks(self, uuid: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...

    def remove(self, uuid: str) -> None:
        """Removes the blob; a missing blob is not an error."""
        ...

    def exists(self, uuid: str) -> bool: ...

    def size(self, uuid: str) -> int: ...

    def list_uuids(self) -> Iterator[str]:
        """Every stored uuid, for consistency checks (slow on large storage areas)."""
        ...
