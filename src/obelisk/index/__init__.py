"""The index: the metadata database behind the resource tree (SQLite or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from obelisk.index.base import Index, IndexWriter


def open_index(location: str) -> Index:
    """``postgresql://…`` opens PostgreSQL; anything else is a SQLite file (or ``:memory:``)."""
    if location.startswith(("postgresql://", "postgres://")):
        from obelisk.index.postgres import PostgresIndex

        return PostgresIndex(location)
    from obelisk.index.sqlite import SqliteIndex

    return SqliteIndex(location if location == ":memory:" else Path(location))


__all__ = ["Index", "IndexWriter", "open_index"]
