"""The index: the metadata database behind the resource tree (SQLite or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from obelisk.index.base import Index, IndexWriter


def open_index(location: str, *, sqlite_synchronous: str = "NORMAL") -> Index:
    """``postgresql://…`` opens PostgreSQL; anything else is a SQLite file (or ``:memory:``).

    ``sqlite_synchronous``: ``NORMAL`` (Orthanc's setting: a commit survives the server's crash,
    the last ones may roll back on a power loss) or ``FULL`` (every commit survives both).
    """
    if location.startswith(("postgresql://", "postgres://")):
        from obelisk.index.postgres import PostgresIndex

        return PostgresIndex(location)
    from obelisk.index.sqlite import SqliteIndex

    return SqliteIndex(
        location if location == ":memory:" else Path(location), synchronous=sqlite_synchronous
    )


__all__ = ["Index", "IndexWriter", "open_index"]
