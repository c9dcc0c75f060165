"""The index on PostgreSQL (psycopg 3), for several servers sharing one database.

Servers racing to create the same patient, study or series meet on the unique ``public_id``:
``INSERT … ON CONFLICT DO NOTHING`` makes the later transaction wait for the earlier one and then
find its row, so neither fails. Tag values are ``COLLATE "C"`` so that ranges and ``LIKE``
prefixes compare code points and use the b-tree indexes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import psycopg

from obelisk.errors import ConfigurationError, ErrorCode, ObeliskError
from obelisk.index.sql import SqlIndex
from obelisk.index.sql_rows import Connection, Dialect
from obelisk.index.sql_writer import SqlWriter

#: Below this many rows, ``executemany`` (pipelined by psycopg) is as quick as ``COPY``.
_COPY_THRESHOLD = 8
#: Resources created before the first refresh of the planner's statistics.
_ANALYZE_AT_LEAST = 1000

_log = logging.getLogger(__name__)


class PostgresDialect(Dialect):
    name = "postgres"
    wildcard_operator = "LIKE"
    no_limit = ""
    migration_lock = "SELECT pg_advisory_xact_lock(4201151001)"
    last_change_seq = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM changes_seq_seq"

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def sql(self, text: str) -> str:
        """``?`` placeholders become psycopg's ``%s`` (a literal ``%`` is doubled)."""
        converted = self._cache.get(text)
        if converted is None:
            converted = text.replace("%", "%%").replace("?", "%s")
            self._cache[text] = converted
        return converted

    def wildcard(self, pattern: str) -> str:
        """A DICOM wildcard as a LIKE pattern, with LIKE's own characters escaped."""
        escaped = re.sub(r"([\\%_])", r"\\\1", pattern)
        return escaped.replace("*", "%").replace("?", "_")

    def insert_rows(
        self,
        connection: Connection,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """``COPY`` for a batch: one round trip, however many rows."""
        if len(rows) < _COPY_THRESHOLD:
            super().insert_rows(connection, table, columns, rows)
            return
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)


class PostgresIndex(SqlIndex):
    dialect = PostgresDialect()
    in_process = False

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._created_since_analyze = 0
        self._analyzed_rows = 0
        try:
            self._connect().close()
        except psycopg.OperationalError as exc:
            raise ConfigurationError(
                f"Cannot connect to the PostgreSQL index at {url}", details=str(exc)
            ) from exc
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> Connection:
        # Autocommit: reads see the latest commit; writes open their transaction explicitly.
        return psycopg.connect(self.url, autocommit=True)

    def _after_commit(self, connection: Connection, writer: SqlWriter) -> None:
        """Refreshes the planner's statistics each time the tables doubled since it last did.

        Without it, statistics taken on an empty index (a manual ``ANALYZE``, autovacuum off or
        late) make the prepared statements of the writer scan whole tables: an ingest that gets
        slower with every instance. ``ANALYZE`` samples, so it stays quick on large tables.
        """
        self._created_since_analyze += writer.created_resources
        if self._created_since_analyze < max(_ANALYZE_AT_LEAST, self._analyzed_rows):
            return
        try:
            connection.execute("ANALYZE resources, tag_values")
            row = connection.execute(
                "SELECT reltuples FROM pg_class WHERE oid = 'resources'::regclass"
            ).fetchone()
        except psycopg.Error as exc:  # the commit is done: never fail the write for this
            _log.warning("Cannot refresh the statistics of the PostgreSQL index: %s", exc)
            return
        self._analyzed_rows = max(0, int(row[0])) if row else 0
        self._created_since_analyze = 0

    def _is_broken(self, connection: Connection) -> bool:
        return isinstance(connection, psycopg.Connection) and (
            connection.closed or connection.broken
        )

    def _translate(self, exc: BaseException) -> ObeliskError | None:
        if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
            return ObeliskError(
                "Concurrent writers on the PostgreSQL index: retry",
                code=ErrorCode.DatabaseCannotSerialize,
                details=str(exc),
            )
        if isinstance(exc, psycopg.OperationalError):
            return ObeliskError(
                "The PostgreSQL index is not available",
                code=ErrorCode.DatabaseUnavailable,
                details=str(exc),
            )
        if isinstance(exc, psycopg.Error):
            return ObeliskError(
                "Error in the PostgreSQL index", code=ErrorCode.Database, details=str(exc)
            )
        return None
