"""The job store in the index database: SQLite (one file, WAL) or PostgreSQL.

It opens its own connection to the location of the index (``Settings.index_location``) and keeps
its own tables (:mod:`obelisk.jobs.migrations`). One connection per store, used under a lock: job
bookkeeping is a few small statements per step. On PostgreSQL, claiming is
``SELECT … FOR UPDATE SKIP LOCKED``, so engines in several processes share one queue; on SQLite,
``BEGIN IMMEDIATE`` serialises writers (one process is the intended use, several still work).

Database errors are translated here, at the one boundary that calls the driver: they become
:class:`~obelisk.errors.ObeliskError` with code ``Database``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from obelisk.errors import ConfigurationError, ErrorCode, ObeliskError
from obelisk.jobs.migrations import MIGRATIONS
from obelisk.jobs.store import COMPLETED_STATES, UPDATABLE, JobRecord

_COLUMNS = (
    "id",
    "type_name",
    "state",
    "priority",
    "order_key",
    "creation_time",
    "last_change_time",
    "completion_seq",
    "completion_time",
    "runtime",
    "error_code",
    "error_details",
    "progress",
    "content",
    "snapshot",
    "outputs",
    "request",
    "lease_owner",
    "lease_expiry",
    "retry_at",
)
_JSON_COLUMNS = frozenset({"content", "snapshot", "outputs"})
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM obelisk_jobs"


def _to_db(column: str, value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if column in _JSON_COLUMNS else value


def _record(row: Sequence[Any]) -> JobRecord:
    values = {
        column: json.loads(value) if column in _JSON_COLUMNS else value
        for column, value in zip(_COLUMNS, row, strict=True)
    }
    return JobRecord(**values)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class SqlJobStore:
    """The SQL common to both engines, written with ``?`` placeholders."""

    #: Appended to the claim query; PostgreSQL skips rows other transactions hold.
    lock_clause = ""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._connection: Any = self._connect()
        self._migrate()

    # --- driver specifics ------------------------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _lock_migrations(self, connection: Any) -> None:
        return None

    # --- helpers -------------------------------------------------------------------------------

    def _execute(self, connection: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return connection.execute(self._sql(sql), tuple(params))

    def _next(self, connection: Any, counter: str) -> int:
        row = self._execute(
            connection,
            "UPDATE obelisk_job_counters SET value = value + 1 WHERE name = ? RETURNING value",
            (counter,),
        ).fetchone()
        return int(row[0])

    def _migrate(self) -> None:
        with self._transaction() as connection:
            self._lock_migrations(connection)
            self._execute(
                connection,
                "CREATE TABLE IF NOT EXISTS obelisk_jobs_schema (version INTEGER PRIMARY KEY)",
            )
            rows = self._execute(connection, "SELECT version FROM obelisk_jobs_schema").fetchall()
            applied = {row[0] for row in rows}
            for version in sorted(MIGRATIONS):
                if version in applied:
                    continue
                for statement in MIGRATIONS[version]:
                    self._execute(connection, statement)
                self._execute(
                    connection, "INSERT INTO obelisk_jobs_schema (version) VALUES (?)", (version,)
                )

    # --- JobStore ------------------------------------------------------------------------------

    def insert(self, records: list[JobRecord]) -> None:
        sql = f"INSERT INTO obelisk_jobs ({', '.join(_COLUMNS)}) VALUES ({_marks(len(_COLUMNS))})"
        with self._transaction() as connection:
            for record in records:
                record.order_key = self._next(connection, "order")
                self._execute(connection, sql, [_to_db(c, getattr(record, c)) for c in _COLUMNS])

    def get(self, job_id: str) -> JobRecord | None:
        with self._transaction() as connection:
            row = self._execute(connection, f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row else None

    def all(self) -> list[JobRecord]:
        with self._transaction() as connection:
            rows = self._execute(connection, _SELECT).fetchall()
        return [_record(row) for row in rows]

    def claim(
        self, owner: str, types: Collection[str], now: float, lease_until: float
    ) -> JobRecord | None:
        if not types:
            return None
        names = sorted(types)
        with self._transaction() as connection:
            row = self._execute(
                connection,
                f"{_SELECT} WHERE type_name IN ({_marks(len(names))}) AND (state = 'Pending' "
                "OR (state = 'Running' AND lease_expiry < ?)) "
                f"ORDER BY priority DESC, order_key LIMIT 1{self.lock_clause}",
                [*names, now],
            ).fetchone()
            if row is None:
                return None
            record = _record(row)
            self._execute(
                connection,
                "UPDATE obelisk_jobs SET state = 'Running', lease_owner = ?, lease_expiry = ?, "
                "request = NULL, last_change_time = ? WHERE id = ?",
                (owner, lease_until, now, record.id),
            )
        record.state, record.lease_owner, record.lease_expiry = "Running", owner, lease_until
        record.request, record.last_change_time = None, now
        return record

    def update(
        self,
        job_id: str,
        changes: dict[str, Any],
        *,
        states: Collection[str] | None = None,
        owner: str | None = None,
        complete: bool = False,
        requeue: bool = False,
    ) -> bool:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"Cannot update {sorted(unknown)}")
        updated = False
        with self._transaction() as connection:
            assignments = [f"{column} = ?" for column in changes]
            params: list[Any] = [_to_db(c, v) for c, v in changes.items()]
            if complete:
                assignments.append("completion_seq = ?")
                params.append(self._next(connection, "completion"))
            elif "state" in changes:
                assignments.append("completion_seq = NULL")
            if requeue:
                assignments.append("order_key = ?")
                params.append(self._next(connection, "order"))
            where = ["id = ?"]
            params.append(job_id)
            if states is not None:
                where.append(f"state IN ({_marks(len(states))})")
                params.extend(states)
            if owner is not None:
                where.append("lease_owner = ?")
                params.append(owner)
            cursor = self._execute(
                connection,
                f"UPDATE obelisk_jobs SET {', '.join(assignments)} WHERE {' AND '.join(where)}",
                params,
            )
            updated = bool(cursor.rowcount == 1)
            if not updated and (complete or requeue):
                raise _Rollback  # leave the counters as they were
        return updated

    def save_step(
        self, job_id: str, owner: str, changes: dict[str, Any]
    ) -> tuple[bool, str | None]:
        assignments = ", ".join(f"{column} = ?" for column in changes)
        params = [_to_db(c, v) for c, v in changes.items()]
        with self._transaction() as connection:
            row = self._execute(
                connection,
                f"UPDATE obelisk_jobs SET {assignments} "
                "WHERE id = ? AND state = 'Running' AND lease_owner = ? RETURNING request",
                [*params, job_id, owner],
            ).fetchone()
        return (False, None) if row is None else (True, row[0])

    def renew(self, owner: str, job_ids: Iterable[str], lease_until: float) -> None:
        ids = list(job_ids)
        if not ids:
            return
        with self._transaction() as connection:
            self._execute(
                connection,
                f"UPDATE obelisk_jobs SET lease_expiry = ? WHERE state = 'Running' "
                f"AND lease_owner = ? AND id IN ({_marks(len(ids))})",
                [lease_until, owner, *ids],
            )

    def recover(self, node: str, now: float) -> int:
        with self._transaction() as connection:
            cursor = self._execute(
                connection,
                "UPDATE obelisk_jobs SET state = 'Pending', lease_owner = NULL, "
                "lease_expiry = NULL, retry_at = NULL, request = NULL "
                "WHERE state = 'Retry' OR (state = 'Running' "
                "AND (substr(lease_owner, 1, ?) = ? OR lease_expiry < ?))",
                (len(node) + 1, node + "/", now),
            )
            return int(cursor.rowcount)

    def promote_retries(self, now: float) -> list[str]:
        with self._transaction() as connection:
            rows = self._execute(
                connection,
                "UPDATE obelisk_jobs SET state = 'Pending', retry_at = NULL, last_change_time = ? "
                "WHERE state = 'Retry' AND retry_at <= ? RETURNING id",
                (now, now),
            ).fetchall()
        return [row[0] for row in rows]

    def _completed(self, connection: Any, extra: str = "") -> list[JobRecord]:
        rows = self._execute(
            connection,
            f"{_SELECT} WHERE state IN ({_marks(len(COMPLETED_STATES))}){extra} "
            "ORDER BY completion_seq DESC",
            COMPLETED_STATES,
        ).fetchall()
        return [_record(row) for row in rows]

    def drop_history(self, keep: int) -> list[JobRecord]:
        with self._transaction() as connection:
            dropped = self._completed(connection)[max(keep, 0) :]
            for record in dropped:
                self._execute(connection, "DELETE FROM obelisk_jobs WHERE id = ?", (record.id,))
        return dropped

    def drop_outputs(self, keep: int) -> list[JobRecord]:
        with self._transaction() as connection:
            dropped = self._completed(connection, " AND outputs <> '{}'")[max(keep, 0) :]
            for record in dropped:
                self._execute(
                    connection, "UPDATE obelisk_jobs SET outputs = '{}' WHERE id = ?", (record.id,)
                )
        return dropped

    def reorder(self, keys: list[tuple[str, int, int]]) -> None:
        with self._transaction() as connection:
            for job_id, priority, order_key in keys:
                self._execute(
                    connection,
                    "UPDATE obelisk_jobs SET priority = ?, order_key = ? "
                    "WHERE id = ? AND state = 'Pending'",
                    (priority, order_key, job_id),
                )

    def delete_all(self) -> list[JobRecord]:
        with self._transaction() as connection:
            rows = self._execute(connection, _SELECT).fetchall()
            self._execute(connection, "DELETE FROM obelisk_jobs")
        return [_record(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class _Rollback(Exception):
    """Raised inside a transaction to undo it; the caller sees ``False``."""


class SqliteJobStore(SqlJobStore):
    """The jobs tables in the SQLite index file (WAL; ``synchronous=NORMAL`` survives kill -9)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        super().__init__()

    def _connect(self) -> Any:
        try:
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise ObeliskError(
                f"Cannot open the jobs database {self.path}",
                code=ErrorCode.SQLiteCannotOpen,
                details=str(exc),
            ) from exc
        return connection

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise ObeliskError(
                    "Cannot start a jobs transaction", code=ErrorCode.Database, details=str(exc)
                ) from exc
            try:
                yield connection
            except _Rollback:
                connection.execute("ROLLBACK")
                return
            except BaseException as exc:
                connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise ObeliskError(
                        "Jobs database error", code=ErrorCode.Database, details=str(exc)
                    ) from exc
                raise
            connection.execute("COMMIT")


class PostgresJobStore(SqlJobStore):
    """The jobs tables in the PostgreSQL index database, shared by every server using it."""

    lock_clause = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__()

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True)
        except psycopg.OperationalError as exc:
            raise ConfigurationError(
                f"Cannot connect to the PostgreSQL jobs database at {self.url}", details=str(exc)
            ) from exc

    def _sql(self, text: str) -> str:
        return text.replace("%", "%%").replace("?", "%s")

    def _lock_migrations(self, connection: Any) -> None:
        connection.execute("SELECT pg_advisory_xact_lock(4201151002)")

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            if self._connection.closed or self._connection.broken:
                self._connection = self._connect()
            connection = self._connection
            try:
                with connection.transaction():
                    try:
                        yield connection
                    except _Rollback as exc:
                        raise psycopg.Rollback() from exc
            except psycopg.Error as exc:
                raise ObeliskError(
                    "Jobs database error", code=ErrorCode.Database, details=str(exc)
                ) from exc
