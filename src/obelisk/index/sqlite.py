"""The default index: one SQLite file in WAL mode, next to the storage area."""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from obelisk.errors import ErrorCode, ObeliskError
from obelisk.index.sql import SqlIndex
from obelisk.index.sql_rows import Connection

log = logging.getLogger("obelisk.index")

#: Seconds between two background checkpoints of the WAL into the database file.
CHECKPOINT_INTERVAL = 0.5
#: WAL pages past which a writer checkpoints itself, should the background thread fall behind.
_WRITER_CHECKPOINT_PAGES = 50_000


class SqliteIndex(SqlIndex):
    """SQLite in WAL mode. ``synchronous=FULL`` makes every commit durable even on a power loss
    (one ``fsync`` per batch of instances, thanks to the ingest's group commit); ``NORMAL``, the
    server's default as in Orthanc, survives a crash of the server but may roll the last commits
    back on a power loss.

    ``:memory:`` is one database shared by the connections of this object (SQLite's shared
    cache). Its readers run ``read_uncommitted``: shared-cache tables are otherwise locked for
    every other connection while a write transaction is open, and reads would fail. The price is
    that a read may see the changes of a write transaction before it commits.

    A file database is checkpointed by a background thread (:class:`WalCheckpointer`): SQLite
    would otherwise copy the WAL into the database, with two ``fsync``, inside the commit that
    crosses 1,000 pages — every ~70 instances, in the commit an upload is waiting for.
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
        self._checkpointer: WalCheckpointer | None = None
        try:
            self.migrate()
            if not self._in_memory:
                self._checkpointer = WalCheckpointer(self._connect)
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
            connection.execute(f"PRAGMA wal_autocheckpoint = {_WRITER_CHECKPOINT_PAGES}")
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
        if self._checkpointer is not None:
            self._checkpointer.close()
        super().close()
        self._keepalive.close()


class WalCheckpointer:
    """Copies the WAL into the database file every :data:`CHECKPOINT_INTERVAL` seconds, on its
    own connection and thread. A ``PASSIVE`` checkpoint waits for nobody: writers go on
    appending to the WAL meanwhile, and what readers still use is copied the next time."""

    def __init__(
        self, connect: Callable[[], Connection], interval: float = CHECKPOINT_INTERVAL
    ) -> None:
        self._connection = connect()
        self._interval = interval
        self._stop = threading.Event()
        self.checkpoints = 0
        self._thread = threading.Thread(target=self._run, name="obelisk-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.checkpoint()

    def checkpoint(self) -> None:
        try:
            self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:  # a busy or closing database: the next round does it
            log.debug("WAL checkpoint not done: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._connection.close()
