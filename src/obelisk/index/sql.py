"""The index in SQL, shared by SQLite and PostgreSQL.

The SQL is written once with ``?`` placeholders; a :class:`Dialect` adapts it to each driver.
Main tags are kept twice: as a JSON object on the resource row (to render it without joins) and
as rows of ``tag_values`` (to search them through an index). Studies also carry their patient's
tags, as Orthanc does, so a study search on PatientName needs no join.

``tag_values`` rows carry the level of their resource, and its two indexes, ``(tag, level,
value_norm, resource_id)`` and ``(tag, level, value, resource_id)``, answer a constraint without
reading the table: :meth:`SqlIndex.find` intersects one such range per constraint. Values compare
in code point order (BINARY in SQLite, ``COLLATE "C"`` in PostgreSQL), so a wildcard's literal
prefix becomes an index range.

The pieces: :mod:`obelisk.index.sql_rows` (dialect, columns, row conversions),
:mod:`obelisk.index.sql_writer` (the writes of one transaction) and this module (the reads, and the
transactions that hand a :class:`SqlWriter` out).

Errors of the database driver leave as :class:`~obelisk.errors.ObeliskError` (``Database``,
``DatabaseUnavailable``, ``DatabaseCannotSerialize``): each back-end translates its own.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources as package_files
from typing import Any, TypeVar

from obelisk.core.changes import ChangeType
from obelisk.core.levels import Level
from obelisk.core.matching import Constraint, ConstraintKind
from obelisk.core.tags import IDENTIFIER_TAGS, main_tag_level
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.index.base import (
    Attachment,
    Change,
    ChildCount,
    ExportedResource,
    InstanceFile,
    MetadataEntry,
    Resource,
    Totals,
)
from obelisk.index.sql_rows import (
    ATTACHMENT_COLUMNS,
    RESOURCE_COLUMNS,
    SUBTREE,
    Connection,
    Dialect,
    chunks,
    literal_prefix,
    prefix_upper_bound,
    row_to_attachment,
    row_to_resource,
)
from obelisk.index.sql_writer import SqlWriter

_T = TypeVar("_T")


class SqlIndex:
    """Reads and write transactions over a DB-API connection factory."""

    dialect: Dialect = Dialect()
    in_process = True

    def __init__(self) -> None:
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer_connection: Connection | None = None
        self._all_connections: list[Connection] = []
        self._connections_lock = threading.Lock()

    # -- to be provided by a back-end ------------------------------------------------------
    def _connect(self) -> Connection:
        raise NotImplementedError

    def _begin(self, connection: Connection) -> None:
        connection.execute("BEGIN")

    # -- connections -------------------------------------------------------------------------
    def _reader(self) -> Connection:
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._connections_lock:
                self._all_connections.append(connection)
        return connection

    def _discard(self, connection: Connection) -> None:
        """Forgets a connection (lost, or left in an unknown state) and closes it."""
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        if self._writer_connection is connection:
            self._writer_connection = None
        with self._connections_lock:
            if connection in self._all_connections:
                self._all_connections.remove(connection)
        with contextlib.suppress(Exception):
            connection.close()

    def _read(self, run: Callable[[Connection], _T]) -> _T:
        """Runs a read on this thread's connection, again on a new one if the first was lost."""
        connection = self._reader()
        try:
            return run(connection)
        except Exception as exc:
            if not self._is_broken(connection):
                self._raise_translated(exc)
                raise
            self._discard(connection)
        try:
            return run(self._reader())
        except Exception as exc:
            self._raise_translated(exc)
            raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        sql = self.dialect.sql(sql)
        return self._read(lambda connection: list(connection.execute(sql, params).fetchall()))

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        sql = self.dialect.sql(sql)
        return self._read(lambda connection: connection.execute(sql, params).fetchone())

    @contextmanager
    def write(self) -> Iterator[SqlWriter]:
        with self._write_lock:
            connection = self._begin_writer()
            try:
                writer = SqlWriter(connection, self.dialect)
                yield writer
                writer.flush()
                connection.execute("COMMIT")
            except BaseException as exc:
                try:
                    connection.execute("ROLLBACK")
                except Exception:  # the first error matters more; this connection goes
                    self._discard(connection)
                self._raise_translated(exc)
                raise
            self._after_commit(connection, writer)

    def _begin_writer(self) -> Connection:
        """The writer connection, in a new transaction; reconnects once if it was lost."""
        for attempt in (1, 2):
            if self._writer_connection is None:
                self._writer_connection = self._connect()
                with self._connections_lock:
                    self._all_connections.append(self._writer_connection)
            connection = self._writer_connection
            try:
                self._begin(connection)
                return connection
            except Exception as exc:
                if attempt == 1 and self._is_broken(connection):
                    self._discard(connection)
                    continue
                self._raise_translated(exc)
                raise
        raise AssertionError("unreachable")

    def _raise_translated(self, exc: BaseException) -> None:
        """Raises the :class:`ObeliskError` standing for a database error; else returns."""
        translated = self._translate(exc)
        if translated is not None:
            raise translated from exc

    # -- to be provided by a back-end, if it can --------------------------------------------
    def _is_broken(self, connection: Connection) -> bool:
        """Whether a connection was lost (a back-end reconnects on the next use)."""
        return False

    def _translate(self, exc: BaseException) -> ObeliskError | None:
        """The error to show for an exception of the database driver, ``None`` for others."""
        return None

    def _after_commit(self, connection: Connection, writer: SqlWriter) -> None:
        """Called with the writer connection, still locked, after each commit."""

    def migrate(self) -> None:
        """Applies the schema migrations this database has not seen yet."""
        with self.write() as writer:
            connection = writer._connection
            if self.dialect.migration_lock:  # several servers may start at once
                connection.execute(self.dialect.migration_lock)
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)"
            )
            applied = {
                row[0]
                for row in connection.execute("SELECT version FROM schema_migrations").fetchall()
            }
            folder = package_files.files("obelisk.index") / "migrations"
            scripts = sorted(
                entry.name
                for entry in folder.iterdir()
                if entry.name.endswith(f".{self.dialect.name}.sql")
            )
            known = {int(name.split("_", 1)[0]) for name in scripts}
            if applied - known:
                raise ObeliskError(
                    "The index was written by a newer version of Obelisk",
                    code=ErrorCode.IncompatibleDatabaseVersion,
                    details=f"schema {sorted(applied)}, this version knows {sorted(known)}",
                )
            for name in scripts:
                version = int(name.split("_", 1)[0])
                if version in applied:
                    continue
                for statement in (folder / name).read_text().split(";"):
                    body = "\n".join(
                        line for line in statement.splitlines() if not line.startswith("--")
                    ).strip()
                    if body:
                        connection.execute(body)
                connection.execute(
                    self.dialect.sql("INSERT INTO schema_migrations (version) VALUES (?)"),
                    (version,),
                )

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._all_connections:
                # Closing a connection another thread is using may fail: ignore it.
                with contextlib.suppress(Exception):
                    connection.close()
            self._all_connections.clear()
        self._writer_connection = None
        self._local = threading.local()

    # -- resources ---------------------------------------------------------------------------
    def lookup(self, public_id: str, level: Level | None = None) -> Resource | None:
        row = self._one(
            f"SELECT {RESOURCE_COLUMNS} FROM resources r LEFT JOIN resources p "
            "ON p.id = r.parent_id WHERE r.public_id = ?",
            (public_id,),
        )
        if row is None or (level is not None and row[1] != int(level)):
            return None
        return row_to_resource(row, self.children_public_ids(row[0]))

    def get_by_internal_ids(self, internal_ids: Sequence[int], *, children: bool) -> list[Resource]:
        result: list[Resource] = []
        for chunk in chunks(internal_ids, 500):
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"SELECT {RESOURCE_COLUMNS} FROM resources r LEFT JOIN resources p "
                f"ON p.id = r.parent_id WHERE r.id IN ({marks})",
                chunk,
            )
            kids: dict[int, list[str]] = {}
            if children:
                for parent_id, public_id in self._query(
                    f"SELECT parent_id, public_id FROM resources WHERE parent_id IN ({marks}) "
                    "ORDER BY id",
                    chunk,
                ):
                    kids.setdefault(parent_id, []).append(public_id)
            by_id = {row[0]: row_to_resource(row, kids.get(row[0], [])) for row in rows}
            result.extend(by_id[i] for i in chunk if i in by_id)
        return result

    def list_internal_ids(
        self, level: Level, *, since: int = 0, limit: int | None = None
    ) -> list[int]:
        params: list[Any] = [int(level)]
        sql = "SELECT id FROM resources WHERE level = ? ORDER BY id" + self._page(
            since, limit, params
        )
        return [row[0] for row in self._query(sql, params)]

    def list_public_ids(
        self, level: Level, *, since: int = 0, limit: int | None = None
    ) -> list[str]:
        params: list[Any] = [int(level)]
        sql = "SELECT public_id FROM resources WHERE level = ? ORDER BY id" + self._page(
            since, limit, params
        )
        return [row[0] for row in self._query(sql, params)]

    def children_public_ids(self, internal_id: int) -> list[str]:
        return [
            row[0]
            for row in self._query(
                "SELECT public_id FROM resources WHERE parent_id = ? ORDER BY id", (internal_id,)
            )
        ]

    def child_counts(self, parent_ids: Sequence[int]) -> list[ChildCount]:
        # one query for what get_by_internal_ids(children=True) would need two for (QIDO counts)
        result: list[ChildCount] = []
        for chunk in chunks(parent_ids, 500):
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                "SELECT c.parent_id, c.main_tags, "
                "(SELECT COUNT(*) FROM resources g WHERE g.parent_id = c.id) "
                f"FROM resources c WHERE c.parent_id IN ({marks}) ORDER BY c.id",
                chunk,
            )
            result.extend(ChildCount(row[0], json.loads(row[1]), row[2]) for row in rows)
        return result

    def find(
        self, level: Level, constraints: Sequence[Constraint], *, since: int, limit: int | None
    ) -> list[int]:
        sql, params = self._find_sql(level, constraints, since=since, limit=limit)
        return [row[0] for row in self._query(sql, params)]

    def _find_sql(
        self, level: Level, constraints: Sequence[Constraint], *, since: int, limit: int | None
    ) -> tuple[str, list[Any]]:
        """The query behind :meth:`find` (``tests/contract/measure_find.py`` explains it).

        Each constraint reads the rows of one tag at one level through a covering index; the
        sets intersect. A constraint on an ancestor's tag selects ancestors, whose descendants
        at the searched level come through ``parent_id``. Studies carry their patient's tags, so
        patient tags are searched on studies for every level below the patient.
        """
        params: list[Any] = []
        # Orthanc 1.10.1 answers instances in the order they came, and the other levels in the
        # order of their public identifiers (it picks one instance per resource through a map
        # keyed by them); it pages in that order.
        order = "id" if level is Level.INSTANCE else "public_id"
        if not constraints:
            params.append(int(level))
            sql = f"SELECT id FROM resources WHERE level = ? ORDER BY {order}"
            return sql + self._page(since, limit, params), params
        by_level: dict[Level, list[tuple[str, list[Any]]]] = {}
        for constraint in constraints:
            tag_level = main_tag_level(constraint.tag)
            assert tag_level is not None and tag_level <= level
            if tag_level is Level.PATIENT and level >= Level.STUDY:
                tag_level = Level.STUDY  # studies carry their patient's tags
            condition, values = self._tag_condition(constraint)
            by_level.setdefault(tag_level, []).append(
                (
                    "SELECT resource_id FROM tag_values WHERE tag = ? AND level = ? AND "
                    + condition,
                    [constraint.tag, int(tag_level), *values],
                )
            )
        sets: list[str] = []
        for tag_level in sorted(by_level, reverse=True):  # the searched level first
            selects = by_level[tag_level]
            if tag_level == level:
                sets += [select for select, _ in selects]
            else:
                ancestors = " INTERSECT ".join(select for select, _ in selects)
                for _ in range(level - tag_level):
                    ancestors = f"SELECT id FROM resources WHERE parent_id IN ({ancestors})"
                sets.append(ancestors)
            for _, values in selects:
                params += values
        sql = (
            "SELECT id FROM resources WHERE id IN ("
            + " INTERSECT ".join(sets)
            + f") ORDER BY {order}"
        )
        return sql + self._page(since, limit, params), params

    def _page(self, since: int, limit: int | None, params: list[Any]) -> str:
        """The ``LIMIT``/``OFFSET`` clause of a listing; appends its parameters."""
        if limit is not None:
            params += [limit, since]
            return " LIMIT ? OFFSET ?"
        if since:
            params.append(since)
            return f" {self.dialect.no_limit} OFFSET ?"
        return ""

    def _tag_condition(self, constraint: Constraint) -> tuple[str, list[Any]]:
        column = "value" if constraint.case_sensitive else "value_norm"
        kind = constraint.kind
        if kind is ConstraintKind.EQUAL:
            return f"{column} = ?", [constraint.values[0]]
        if kind is ConstraintKind.LIST:
            marks = ",".join("?" * len(constraint.values))
            return f"{column} IN ({marks})", list(constraint.values)
        if kind is ConstraintKind.RANGE:
            lower, upper = constraint.values
            parts: list[str] = []
            values: list[Any] = []
            if lower:
                parts.append(f"{column} >= ?")
                values.append(lower)
            if upper:
                parts.append(f"{column} <= ?")
                # "20200101-20200131" includes times on the last day in DT values
                values.append(upper + "\uffff" if len(upper) == 8 else upper)
            return " AND ".join(parts) or "1 = 1", values
        pattern = constraint.values[0]
        prefix = literal_prefix(pattern)
        sql = f"{column} {self.dialect.wildcard_operator} ?"
        values = [self.dialect.wildcard(pattern)]
        bound = prefix_upper_bound(prefix)
        if prefix:
            # An explicit range, so that both engines search the index whatever the pattern.
            sql = f"{column} >= ? AND " + (f"{column} < ? AND " if bound else "") + sql
            values = [prefix, *([bound] if bound else []), *values]
        return sql, values

    def instance_files(self, internal_id: int, content_type: int = 1) -> list[InstanceFile]:
        # Tree order: study by study, series by series, then instances, each in creation order.
        rows = self._query(
            SUBTREE + f"SELECT r.public_id, r.id, r.parent_id, series.parent_id, "
            f"{ATTACHMENT_COLUMNS} FROM subtree s "
            "JOIN resources r ON r.id = s.id JOIN attachments a ON a.resource_id = r.id "
            "JOIN resources series ON series.id = r.parent_id "
            "WHERE r.level = 3 AND a.content_type = ? "
            "ORDER BY series.parent_id, r.parent_id, r.id",
            (internal_id, content_type),
        )
        return [
            InstanceFile(row[0], row[1], row_to_attachment(row[4:]), row[2], row[3]) for row in rows
        ]

    def lookup_identifier(self, value: str) -> list[Resource]:
        # PatientID on patients only: studies carry a copy of it.
        select = "SELECT resource_id FROM tag_values WHERE tag = ? AND level = ? AND value = ?"
        params: list[Any] = []
        for level, tag in IDENTIFIER_TAGS.items():
            params += [tag, int(level), value]
        rows = self._query(" UNION ".join([select] * len(IDENTIFIER_TAGS)) + " ORDER BY 1", params)
        return self.get_by_internal_ids([row[0] for row in rows], children=False)

    # -- attachments, metadata ---------------------------------------------------------------
    def attachments(self, internal_id: int) -> list[Attachment]:
        rows = self._query(
            f"SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE resource_id = ? "
            "ORDER BY content_type",
            (internal_id,),
        )
        return [row_to_attachment(row) for row in rows]

    def metadata(self, internal_id: int) -> dict[int, str]:
        rows = self._query(
            "SELECT type, value FROM metadata WHERE resource_id = ? ORDER BY type", (internal_id,)
        )
        return {row[0]: row[1] for row in rows}

    def metadata_entry(self, internal_id: int, metadata_type: int) -> MetadataEntry | None:
        row = self._one(
            "SELECT value, revision FROM metadata WHERE resource_id = ? AND type = ?",
            (internal_id, metadata_type),
        )
        return None if row is None else MetadataEntry(row[0], int(row[1]))

    def attachments_of_many(
        self, internal_ids: Sequence[int], content_type: int
    ) -> dict[int, Attachment]:
        """One attachment type for many resources, in one query per 500 ids."""
        found: dict[int, Attachment] = {}
        for chunk in chunks(internal_ids, 500):
            marks = ",".join("?" * len(chunk))
            for row in self._query(
                f"SELECT resource_id, {ATTACHMENT_COLUMNS} FROM attachments "
                f"WHERE content_type = ? AND resource_id IN ({marks})",
                [content_type, *chunk],
            ):
                found[row[0]] = row_to_attachment(row[1:])
        return found

    def metadata_of_many(self, internal_ids: Sequence[int], metadata_type: int) -> dict[int, str]:
        """One metadata type for many resources."""
        found: dict[int, str] = {}
        for chunk in chunks(internal_ids, 500):
            marks = ",".join("?" * len(chunk))
            for row in self._query(
                f"SELECT resource_id, value FROM metadata WHERE type = ? "
                f"AND resource_id IN ({marks})",
                [metadata_type, *chunk],
            ):
                found[row[0]] = row[1]
        return found

    # -- logs --------------------------------------------------------------------------------
    def changes(self, since: int, limit: int) -> tuple[list[Change], int]:
        rows = self._query(
            "SELECT seq, change_type, level, public_id, date FROM changes WHERE seq > ? "
            "ORDER BY seq LIMIT ?",
            (since, limit),
        )
        return [
            Change(row[0], ChangeType(row[1]), Level(row[2]), row[3], row[4]) for row in rows
        ], self.last_change_seq()

    def has_changes_after(self, seq: int) -> bool:
        return self._one("SELECT 1 FROM changes WHERE seq > ? LIMIT 1", (seq,)) is not None

    def last_change_seq(self) -> int:
        row = self._one(self.dialect.last_change_seq)
        return int(row[0]) if row is not None and row[0] is not None else 0

    def last_change(self) -> Change | None:
        row = self._one(
            "SELECT seq, change_type, level, public_id, date FROM changes ORDER BY seq DESC LIMIT 1"
        )
        return (
            None
            if row is None
            else Change(row[0], ChangeType(row[1]), Level(row[2]), row[3], row[4])
        )

    def exports(self, since: int, limit: int) -> tuple[list[ExportedResource], int]:
        rows = self._query(
            "SELECT seq, level, public_id, remote_modality, patient_id, study_uid, series_uid, "
            "sop_instance_uid, date FROM exports WHERE seq > ? ORDER BY seq LIMIT ?",
            (since, limit),
        )
        last = self._one("SELECT MAX(seq) FROM exports")[0] or 0
        return [ExportedResource(row[0], Level(row[1]), *row[2:]) for row in rows], int(last)

    # -- statistics --------------------------------------------------------------------------
    def totals(self) -> Totals:
        counts = dict(self._query("SELECT level, COUNT(*) FROM resources GROUP BY level"))
        sizes = self._one(
            "SELECT COALESCE(SUM(compressed_size), 0), COALESCE(SUM(uncompressed_size), 0) "
            "FROM attachments"
        )
        return Totals(
            patients=counts.get(0, 0),
            studies=counts.get(1, 0),
            series=counts.get(2, 0),
            instances=counts.get(3, 0),
            compressed_size=int(sizes[0]),
            uncompressed_size=int(sizes[1]),
        )

    def subtree_totals(self, internal_id: int) -> tuple[dict[Level, int], int, int]:
        counts = {
            Level(row[0]): row[1]
            for row in self._query(
                SUBTREE + "SELECT r.level, COUNT(*) FROM subtree s JOIN resources r "
                "ON r.id = s.id GROUP BY r.level",
                (internal_id,),
            )
        }
        sizes = self._one(
            SUBTREE + "SELECT COALESCE(SUM(a.compressed_size), 0), "
            "COALESCE(SUM(a.uncompressed_size), 0) FROM subtree s "
            "JOIN attachments a ON a.resource_id = s.id",
            (internal_id,),
        )
        return counts, int(sizes[0]), int(sizes[1])

    def oldest_unprotected_patient(self, exclude: str | None = None) -> Resource | None:
        row = self._one(
            "SELECT id FROM resources WHERE level = 0 AND protected = 0 AND public_id <> ? "
            "ORDER BY last_update_epoch, id LIMIT 1",
            (exclude or "",),
        )
        if row is None:
            return None
        found = self.get_by_internal_ids([row[0]], children=False)
        return found[0] if found else None

    def get_global(self, name: str) -> str | None:
        row = self._one("SELECT value FROM global_properties WHERE name = ?", (name,))
        return None if row is None else str(row[0])

    def all_attachment_uuids(self) -> Iterator[str]:
        for row in self._query("SELECT uuid FROM attachments"):
            yield row[0]
