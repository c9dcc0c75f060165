"""The default index: one SQLite file in WAL mode, next to the storage area."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from obelisk.errors import ErrorCode, ObeliskError
from obelisk.index.sql import SqlIndex
from obelisk.index.sql_rows import Connection


class SqliteIndex(SqlIndex):
    """SQLite in WAL mode. ``synchronous=FULL`` makes every commit durable even on a power loss
    (one ``fsync`` per batch of instances, thanks to the ingest's group commit); ``NORMAL``, the
    server's default as in Orthanc, survives a crash of the server but may roll the last commits
    back on a power loss.

    ``:memory:`` is one database shared by the connections of this object (SQLite's shared
    cache). Its readers run ``read_uncommitted``: shared-cache tables are otherwise locked for
    every other connection while a write transaction is open, and reads would fail. The price is
    that a read may see the changes of a write transaction before it commits.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        super().__init__()
        self.path = str(path)
        self._in_memory = self.path == ":memory:"
        if not self._in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        else:
            # One shared in-memory database for every connection of this index.
            self.path = f"file:obelisk-{uuid.uuid4().hex}?mode=memory&cache=shared"
        self._synchronous = synchronous
        self._keepalive = self._connect()  # keeps a shared in-memory database alive
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> Connection:
        connection = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=30,
            uri=self._in_memory,
        )
        connection.execute("PRAGMA foreign_keys = ON")
        if self._in_memory:
            connection.execute("PRAGMA read_uncommitted = 1")
        else:
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {self._synchronous}")
        connection.execute("PRAGMA cache_size = -65536")
        connection.execute("PRAGMA temp_store = MEMORY")
        return connection

    def _begin(self, connection: Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")

    def _translate(self, exc: BaseException) -> ObeliskError | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return ObeliskError(
                "The SQLite index is locked by another writer",
                code=ErrorCode.DatabaseUnavailable,
                details=str(exc),
            )
        return ObeliskError("Error in the SQLite index", code=ErrorCode.Database, details=str(exc))

    def close(self) -> None:
        super().close()
        self._keepalive.close()
