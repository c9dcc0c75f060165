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

Errors of the database driver leave as :class:`~obelisk.errors.ObeliskError` (``Database``,
``DatabaseUnavailable``, ``DatabaseCannotSerialize``): each back-end translates its own.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources as package_files
from typing import Any, Protocol, TypeVar

from obelisk.core.changes import ChangeType, MetadataType
from obelisk.core.levels import Level
from obelisk.core.matching import Constraint, ConstraintKind, normalize
from obelisk.core.series import series_status
from obelisk.core.tags import IDENTIFIER_TAGS, MAIN_TAGS, main_tag_level
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.index.base import (
    Attachment,
    Change,
    DeleteOutcome,
    ExportedResource,
    InstanceFile,
    NewInstance,
    Resource,
    StoreOutcome,
    Totals,
)

_RESOURCE_COLUMNS = (
    "r.id, r.level, r.public_id, r.parent_id, p.public_id, r.main_tags, r.patient_tags, "
    "r.is_stable, r.last_update, r.protected"
)
_ATTACHMENT_COLUMNS = (
    "content_type, uuid, uncompressed_size, uncompressed_md5, compressed_size, compressed_md5, "
    "compression, revision"
)
_SUBTREE = (
    "WITH RECURSIVE subtree(id) AS (SELECT CAST(? AS BIGINT) UNION ALL "
    "SELECT r.id FROM resources r JOIN subtree s ON r.parent_id = s.id) "
)
_T = TypeVar("_T")
_NAME_TO_TAG = {level: {name: tag for tag, name in MAIN_TAGS[level]} for level in Level}


class Connection(Protocol):
    """What the index needs of a DB-API connection (``sqlite3`` and psycopg 3 both fit)."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    def cursor(self) -> Any: ...

    def close(self) -> None: ...


class Dialect:
    """What differs between SQL engines, kept small on purpose."""

    name = "sqlite"
    #: The SQL operator matching DICOM wildcards once converted by :meth:`wildcard`.
    wildcard_operator = "GLOB"

    #: What stands for "no limit" before an ``OFFSET`` (SQLite wants a ``LIMIT`` clause there).
    no_limit = "LIMIT -1"
    #: A statement serialising concurrent migrations, when the engine needs one.
    migration_lock: str | None = None
    #: The last sequence number ever allocated to a change, deleted or not.
    last_change_seq = "SELECT seq FROM sqlite_sequence WHERE name = 'changes'"

    def sql(self, text: str) -> str:
        """The SQL written for ``sqlite3`` (``?`` placeholders) in this driver's syntax."""
        return text

    def wildcard(self, pattern: str) -> str:
        """A DICOM wildcard (``*``, ``?``) as a GLOB pattern, ``[`` taken literally."""
        return "".join("[[]" if c == "[" else c for c in pattern)

    def insert_rows(
        self,
        connection: Connection,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """Inserts many rows at once (``executemany`` here; PostgreSQL uses ``COPY``)."""
        marks = ", ".join("?" * len(columns))
        sql = self.sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})")
        # psycopg connections have no executemany: go through a cursor (sqlite3 has both).
        cursor = connection.cursor()
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()


def _chunks(values: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """``values`` in lists of at most ``size`` (engines cap the parameters of one statement)."""
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def literal_prefix(pattern: str) -> str:
    """The characters before the first wildcard: lets the database use its index."""
    for position, char in enumerate(pattern):
        if char in "*?":
            return pattern[:position]
    return pattern


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``, or ``None``.

    Both engines compare these columns in code point order (SQLite's BINARY collation, the
    ``"C"`` collation on PostgreSQL), so ``prefix <= value < bound`` selects the prefix exactly.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be encoded
                code = 0xE000
            return "".join(chars) + chr(code)
    return None
    return None


def _row_to_attachment(row: Sequence[Any]) -> Attachment:
    return Attachment(
        content_type=row[0],
        uuid=row[1],
        uncompressed_size=row[2],
        uncompressed_md5=row[3],
        compressed_size=row[4],
        compressed_md5=row[5],
        compression=row[6],
        revision=row[7],
    )


def _attachment_row(internal_id: int, attachment: Attachment, revision: int = 1) -> tuple[Any, ...]:
    return (
        internal_id,
        attachment.content_type,
        attachment.uuid,
        attachment.uncompressed_size,
        attachment.uncompressed_md5,
        attachment.compressed_size,
        attachment.compressed_md5,
        attachment.compression,
        revision,
    )


def _row_to_resource(row: Sequence[Any], children: list[str] | None = None) -> Resource:
    return Resource(
        internal_id=row[0],
        level=Level(row[1]),
        public_id=row[2],
        parent_internal_id=row[3],
        parent_public_id=row[4],
        main_tags=json.loads(row[5]),
        patient_tags=json.loads(row[6]) if row[6] is not None else None,
        is_stable=bool(row[7]),
        last_update=row[8],
        protected=bool(row[9]),
        children=children or [],
    )


#: The tables ``store_instance`` fills in bulk, with their columns.
_TAG_VALUES = ("tag_values", ("resource_id", "level", "tag", "value", "value_norm"))
_ATTACHMENTS = (
    "attachments",
    (
        "resource_id",
        "content_type",
        "uuid",
        "uncompressed_size",
        "uncompressed_md5",
        "compressed_size",
        "compressed_md5",
        "compression",
        "revision",
    ),
)
_METADATA = ("metadata", ("resource_id", "type", "value"))
_CHANGES = ("changes", ("change_type", "level", "public_id", "date"))


def _normalized(value: str) -> str:
    """:func:`normalize`, with a shortcut for ASCII (nothing to decompose)."""
    return value.upper() if value.isascii() else normalize(value)


class SqlWriter:
    """Write operations on one open transaction.

    ``store_instance`` only runs the statements whose answer it needs (ids); the rows nothing
    reads back in the transaction (tag values, attachments, metadata, changes) wait in memory
    and go in one ``executemany`` (``COPY`` on PostgreSQL) per table at :meth:`_flush`, which the
    other operations and the commit call first. Ancestors are marked as updated once per series,
    transaction and second. A batch of instances of one series thus costs two statements per
    instance: is it already stored, insert it.
    """

    def __init__(self, connection: Connection, dialect: Dialect) -> None:
        self._connection = connection
        self._dialect = dialect
        self._pending: dict[tuple[str, tuple[str, ...]], list[Sequence[Any]]] = {}
        #: (series public id, now) → series id, for series this transaction created or touched
        #: (with their study and patient) at ``now``: the next instances skip the update.
        self._fresh: dict[tuple[str, str], int] = {}
        #: Resources this transaction created (PostgreSQL keeps its statistics up to date).
        self.created_resources = 0

    def _defer(self, table: tuple[str, tuple[str, ...]], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._pending.setdefault(table, []).extend(rows)

    def _settle(self) -> None:
        """Before any other write than a store: deferred rows in, fresh-series memory out."""
        self._flush()
        self._fresh.clear()

    def _flush(self) -> None:
        """Writes the deferred rows, table by table, in the order they came."""
        pending, self._pending = self._pending, {}
        for (table, columns), rows in pending.items():
            self._dialect.insert_rows(self._connection, table, columns, rows)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._connection.execute(self._dialect.sql(sql), params)

    def _id_of(self, public_id: str) -> int | None:
        row = self._execute("SELECT id FROM resources WHERE public_id = ?", (public_id,)).fetchone()
        return None if row is None else int(row[0])

    def _insert_tags(
        self, resource_id: int, level: Level, tags: dict[str, str], tags_level: Level | None = None
    ) -> None:
        """Indexes the main tags of ``tags_level`` (``level`` by default) held by a resource."""
        names = _NAME_TO_TAG[level if tags_level is None else tags_level]
        self._defer(
            _TAG_VALUES,
            [
                (resource_id, int(level), names[name], value, _normalized(value))
                for name, value in tags.items()
                if name in names
            ],
        )

    def store_instance(self, new: NewInstance, *, overwrite: bool, now: str) -> StoreOutcome:
        epoch = time.time()
        replaced: tuple[str, ...] = ()
        existing = self._id_of(new.public_ids[Level.INSTANCE])
        if existing is not None:
            if not overwrite:
                return StoreOutcome(existing, already_stored=True)
            replaced = self._drop_instance(existing)

        created: list[Level] = []
        parent_id: int | None = self._fresh.get((new.public_ids[Level.SERIES], now))
        if parent_id is None:  # not already touched by this transaction, this second
            ancestors = self._touch_ancestors(new.public_ids[:3], now, epoch)
            for level in (Level.PATIENT, Level.STUDY, Level.SERIES):
                found = ancestors.get(level)
                if found is None:
                    found, inserted = self._insert_or_touch(new, level, parent_id, now, epoch)
                    if inserted:
                        created.append(level)
                parent_id = found
            assert parent_id is not None
            self._fresh[(new.public_ids[Level.SERIES], now)] = parent_id

        instance_tags = new.main_tags.get(Level.INSTANCE, {})
        instance_id: int | None = None
        while instance_id is None:
            row = self._execute(
                "INSERT INTO resources (level, public_id, parent_id, main_tags, is_stable, "
                "last_update, last_update_epoch) VALUES (?, ?, ?, ?, 1, ?, ?) "
                "ON CONFLICT (public_id) DO NOTHING RETURNING id",
                (
                    int(Level.INSTANCE),
                    new.public_ids[Level.INSTANCE],
                    parent_id,
                    json.dumps(instance_tags),
                    now,
                    epoch,
                ),
            ).fetchone()
            if row is not None:
                instance_id = int(row[0])
                self.created_resources += 1
                break
            # Another server committed the same instance since our first look.
            existing = self._id_of(new.public_ids[Level.INSTANCE])
            if existing is None:
                continue  # ...and it is gone again: try once more
            if not overwrite:
                return StoreOutcome(existing, already_stored=True)
            replaced += self._drop_instance(existing)

        self._insert_tags(instance_id, Level.INSTANCE, instance_tags)
        self._defer(
            _ATTACHMENTS,
            [_attachment_row(instance_id, attachment) for attachment in new.attachments],
        )
        self._defer(_METADATA, [(instance_id, key, value) for key, value in new.metadata.items()])
        if Level.SERIES in created:
            self._defer(
                _METADATA,
                [(parent_id, key, value) for key, value in new.series_metadata.items()],
            )
        changes = [(ChangeType.NewInstance, Level.INSTANCE)] + [
            (change, level)
            for level, change in (
                (Level.SERIES, ChangeType.NewSeries),
                (Level.STUDY, ChangeType.NewStudy),
                (Level.PATIENT, ChangeType.NewPatient),
            )
            if level in created
        ]
        completed = self._completes_series(parent_id, new)
        if completed:
            changes.append((ChangeType.CompletedSeries, Level.SERIES))
        self._defer(
            _CHANGES,
            [(int(change), int(level), new.public_ids[level], now) for change, level in changes],
        )
        return StoreOutcome(instance_id, False, tuple(created), replaced, completed)

    def _completes_series(self, series_id: int, new: NewInstance) -> bool:
        """Whether this instance makes its series Complete (Orthanc's CompletedSeries).

        Costs a count only in series that announce their size, and the full status check only
        when the count reaches it.
        """
        expected_text = new.series_metadata.get(int(MetadataType.ExpectedNumberOfInstances))
        if not expected_text:
            return False
        expected = int(expected_text)
        count = self._execute(
            "SELECT COUNT(*) FROM resources WHERE parent_id = ?", (series_id,)
        ).fetchone()[0]
        if count != expected:
            return False
        self._flush()  # the IndexInSeries of this batch's instances
        rows = self._execute(
            "SELECT m.value FROM resources r LEFT JOIN metadata m ON m.resource_id = r.id "
            "AND m.type = ? WHERE r.parent_id = ?",
            (int(MetadataType.IndexInSeries), series_id),
        ).fetchall()
        indexes = [int(row[0]) if row[0] is not None else None for row in rows]
        return series_status(expected, indexes) == "Complete"

    def _drop_instance(self, internal_id: int) -> tuple[str, ...]:
        """Deletes an instance being overwritten; its ancestors stay. Returns its files."""
        self._flush()  # it may have been stored earlier in this transaction
        replaced = tuple(a.uuid for a in self._attachments(internal_id))
        self._execute(
            "DELETE FROM changes WHERE public_id = (SELECT public_id FROM resources WHERE id = ?)",
            (internal_id,),
        )
        self._execute("DELETE FROM resources WHERE id = ?", (internal_id,))
        return replaced

    def _touch_ancestors(
        self, public_ids: Sequence[str], now: str, epoch: float
    ) -> dict[Level, int]:
        """Marks the existing ancestors as updated (hence unstable); returns their ids.

        One statement in the common case of an instance joining an existing series.
        """
        rows = self._execute(
            "UPDATE resources SET is_stable = 0, last_update = ?, last_update_epoch = ? "
            "WHERE public_id IN (?, ?, ?) RETURNING id, level",
            (now, epoch, *public_ids),
        ).fetchall()
        return {Level(row[1]): int(row[0]) for row in rows}

    def _insert_or_touch(
        self, new: NewInstance, level: Level, parent_id: int | None, now: str, epoch: float
    ) -> tuple[int, bool]:
        """Creates the resource of ``level``, or finds it if another server just did."""
        public_id = new.public_ids[level]
        tags = new.main_tags.get(level, {})
        patient_tags = new.main_tags.get(Level.PATIENT, {}) if level is Level.STUDY else None
        while True:
            row = self._execute(
                "INSERT INTO resources (level, public_id, parent_id, main_tags, patient_tags, "
                "is_stable, last_update, last_update_epoch) VALUES (?, ?, ?, ?, ?, 0, ?, ?) "
                "ON CONFLICT (public_id) DO NOTHING RETURNING id",
                (
                    int(level),
                    public_id,
                    parent_id,
                    json.dumps(tags),
                    None if patient_tags is None else json.dumps(patient_tags),
                    now,
                    epoch,
                ),
            ).fetchone()
            if row is not None:
                resource_id = int(row[0])
                self.created_resources += 1
                self._insert_tags(resource_id, level, tags)
                if patient_tags is not None:
                    self._insert_tags(resource_id, level, patient_tags, Level.PATIENT)
                return resource_id, True
            # The conflicting row was committed by a concurrent transaction (PostgreSQL waits
            # for it): it is visible to the next statement.
            row = self._execute(
                "UPDATE resources SET is_stable = 0, last_update = ?, last_update_epoch = ? "
                "WHERE public_id = ? RETURNING id",
                (now, epoch, public_id),
            ).fetchone()
            if row is not None:
                return int(row[0]), False

    def _attachments(self, internal_id: int) -> list[Attachment]:
        rows = self._execute(
            f"SELECT {_ATTACHMENT_COLUMNS} FROM attachments WHERE resource_id = ?", (internal_id,)
        ).fetchall()
        return [_row_to_attachment(row) for row in rows]

    def delete_resource(self, internal_id: int, *, now: str) -> DeleteOutcome:
        self._settle()
        uuids = tuple(
            row[0]
            for row in self._execute(
                _SUBTREE
                + "SELECT a.uuid FROM attachments a JOIN subtree s ON a.resource_id = s.id",
                (internal_id,),
            ).fetchall()
        )
        deleted = [
            (Level(row[0]), row[1])
            for row in self._execute(
                _SUBTREE + "SELECT r.level, r.public_id FROM resources r JOIN subtree s "
                "ON r.id = s.id ORDER BY r.level",
                (internal_id,),
            ).fetchall()
        ]
        parent = self._execute(
            "SELECT parent_id FROM resources WHERE id = ?", (internal_id,)
        ).fetchone()
        self._execute("DELETE FROM resources WHERE id = ?", (internal_id,))
        remaining: tuple[Level, str] | None = None
        parent_id = parent[0] if parent else None
        while parent_id is not None:
            row = self._execute(
                "SELECT level, public_id, parent_id, "
                "(SELECT COUNT(*) FROM resources c WHERE c.parent_id = r.id) "
                "FROM resources r WHERE id = ?",
                (parent_id,),
            ).fetchone()
            if row is None:
                break
            if row[3] > 0:
                remaining = (Level(row[0]), row[1])
                break
            deleted.append((Level(row[0]), row[1]))
            self._execute("DELETE FROM resources WHERE id = ?", (parent_id,))
            parent_id = row[2]
        # As Orthanc, whose changes cascade on their resource: the log forgets deleted resources
        # instead of recording their deletion (the event bus still announces it).
        for chunk in _chunks([public_id for _, public_id in deleted], 500):
            marks = ", ".join("?" * len(chunk))
            self._execute(f"DELETE FROM changes WHERE public_id IN ({marks})", chunk)
        return DeleteOutcome(uuids, remaining, tuple(deleted))

    def set_metadata(self, internal_id: int, metadata_type: int, value: str) -> None:
        self._settle()
        self._execute(
            "INSERT INTO metadata (resource_id, type, value) VALUES (?, ?, ?) "
            "ON CONFLICT (resource_id, type) DO UPDATE SET value = excluded.value, "
            "revision = metadata.revision + 1",
            (internal_id, metadata_type, value),
        )

    def delete_metadata(self, internal_id: int, metadata_type: int) -> bool:
        self._settle()
        cursor = self._execute(
            "DELETE FROM metadata WHERE resource_id = ? AND type = ?", (internal_id, metadata_type)
        )
        return bool(cursor.rowcount)

    def set_attachment(self, internal_id: int, attachment: Attachment) -> Attachment | None:
        self._settle()
        previous = self.delete_attachment(internal_id, attachment.content_type)
        row = _attachment_row(internal_id, attachment, (previous.revision + 1) if previous else 1)
        self._dialect.insert_rows(self._connection, *_ATTACHMENTS, [row])
        return previous

    def delete_attachment(self, internal_id: int, content_type: int) -> Attachment | None:
        self._settle()
        row = self._execute(
            f"SELECT {_ATTACHMENT_COLUMNS} FROM attachments WHERE resource_id = ? "
            "AND content_type = ?",
            (internal_id, content_type),
        ).fetchone()
        if row is None:
            return None
        self._execute(
            "DELETE FROM attachments WHERE resource_id = ? AND content_type = ?",
            (internal_id, content_type),
        )
        return _row_to_attachment(row)

    def log_change(self, change_type: ChangeType, level: Level, public_id: str, now: str) -> None:
        self._defer(_CHANGES, [(int(change_type), int(level), public_id, now)])

    def log_export(self, exported: ExportedResource) -> None:
        self._settle()
        self._execute(
            "INSERT INTO exports (level, public_id, remote_modality, patient_id, study_uid, "
            "series_uid, sop_instance_uid, date) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                int(exported.level),
                exported.public_id,
                exported.remote_modality,
                exported.patient_id,
                exported.study_uid,
                exported.series_uid,
                exported.sop_instance_uid,
                exported.date,
            ),
        )

    def set_protected(self, internal_id: int, protected: bool) -> None:
        self._settle()
        self._execute(
            "UPDATE resources SET protected = ? WHERE id = ?", (int(protected), internal_id)
        )

    def mark_stable(self, older_than_epoch: float, now: str) -> list[tuple[Level, str]]:
        self._settle()
        rows = self._execute(
            "SELECT id, level, public_id FROM resources WHERE is_stable = 0 "
            "AND last_update_epoch < ? ORDER BY level DESC, id",
            (older_than_epoch,),
        ).fetchall()
        stable_change = {
            Level.PATIENT: ChangeType.StablePatient,
            Level.STUDY: ChangeType.StableStudy,
            Level.SERIES: ChangeType.StableSeries,
        }
        result = []
        for internal_id, level_number, public_id in rows:
            level = Level(level_number)
            self._execute("UPDATE resources SET is_stable = 1 WHERE id = ?", (internal_id,))
            if level in stable_change:
                self.log_change(stable_change[level], level, public_id, now)
            result.append((level, public_id))
        return result

    def clear_changes(self) -> None:
        self._settle()
        self._execute("DELETE FROM changes")

    def clear_exports(self) -> None:
        self._settle()
        self._execute("DELETE FROM exports")

    def set_global(self, name: str, value: str) -> None:
        self._settle()
        self._execute(
            "INSERT INTO global_properties (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )


class SqlIndex:
    """Reads and write transactions over a DB-API connection factory."""

    dialect: Dialect = Dialect()

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
                writer._flush()
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
            f"SELECT {_RESOURCE_COLUMNS} FROM resources r LEFT JOIN resources p "
            "ON p.id = r.parent_id WHERE r.public_id = ?",
            (public_id,),
        )
        if row is None or (level is not None and row[1] != int(level)):
            return None
        return _row_to_resource(row, self.children_public_ids(row[0]))

    def get_by_internal_ids(self, internal_ids: Sequence[int], *, children: bool) -> list[Resource]:
        result: list[Resource] = []
        for chunk in _chunks(internal_ids, 500):
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"SELECT {_RESOURCE_COLUMNS} FROM resources r LEFT JOIN resources p "
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
            by_id = {row[0]: _row_to_resource(row, kids.get(row[0], [])) for row in rows}
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
            _SUBTREE + f"SELECT r.public_id, r.id, r.parent_id, series.parent_id, "
            f"{_ATTACHMENT_COLUMNS} FROM subtree s "
            "JOIN resources r ON r.id = s.id JOIN attachments a ON a.resource_id = r.id "
            "JOIN resources series ON series.id = r.parent_id "
            "WHERE r.level = 3 AND a.content_type = ? "
            "ORDER BY series.parent_id, r.parent_id, r.id",
            (internal_id, content_type),
        )
        return [
            InstanceFile(row[0], row[1], _row_to_attachment(row[4:]), row[2], row[3])
            for row in rows
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
            f"SELECT {_ATTACHMENT_COLUMNS} FROM attachments WHERE resource_id = ? "
            "ORDER BY content_type",
            (internal_id,),
        )
        return [_row_to_attachment(row) for row in rows]

    def metadata(self, internal_id: int) -> dict[int, str]:
        rows = self._query(
            "SELECT type, value FROM metadata WHERE resource_id = ? ORDER BY type", (internal_id,)
        )
        return {row[0]: row[1] for row in rows}

    def attachments_of_many(
        self, internal_ids: Sequence[int], content_type: int
    ) -> dict[int, Attachment]:
        """One attachment type for many resources, in one query per 500 ids."""
        found: dict[int, Attachment] = {}
        for chunk in _chunks(internal_ids, 500):
            marks = ",".join("?" * len(chunk))
            for row in self._query(
                f"SELECT resource_id, {_ATTACHMENT_COLUMNS} FROM attachments "
                f"WHERE content_type = ? AND resource_id IN ({marks})",
                [content_type, *chunk],
            ):
                found[row[0]] = _row_to_attachment(row[1:])
        return found

    def metadata_of_many(self, internal_ids: Sequence[int], metadata_type: int) -> dict[int, str]:
        """One metadata type for many resources."""
        found: dict[int, str] = {}
        for chunk in _chunks(internal_ids, 500):
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
                _SUBTREE + "SELECT r.level, COUNT(*) FROM subtree s JOIN resources r "
                "ON r.id = s.id GROUP BY r.level",
                (internal_id,),
            )
        }
        sizes = self._one(
            _SUBTREE + "SELECT COALESCE(SUM(a.compressed_size), 0), "
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
