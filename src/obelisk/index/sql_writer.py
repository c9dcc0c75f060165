"""Write operations of the SQL index on one open transaction (:class:`SqlWriter`)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

from obelisk.core.changes import ChangeType, MetadataType
from obelisk.core.levels import Level
from obelisk.core.series import series_status
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.index.base import (
    FIRST_REVISION,
    Attachment,
    DeleteOutcome,
    Expected,
    ExportedResource,
    MetadataEntry,
    NewInstance,
    StoreOutcome,
)
from obelisk.index.sql_rows import (
    ATTACHMENT_COLUMNS,
    ATTACHMENTS,
    CHANGES,
    METADATA,
    NAME_TO_TAG,
    SUBTREE,
    TAG_VALUES,
    Connection,
    Dialect,
    attachment_row,
    chunks,
    normalized,
    row_to_attachment,
)


class SqlWriter:
    """Write operations on one open transaction.

    ``store_instance`` only runs the statements whose answer it needs (ids); the rows nothing
    reads back in the transaction (tag values, attachments, metadata, changes) wait in memory
    and go in one ``executemany`` (``COPY`` on PostgreSQL) per table at :meth:`flush`, which the
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
        self.flush()
        self._fresh.clear()

    def flush(self) -> None:
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
        names = NAME_TO_TAG[level if tags_level is None else tags_level]
        self._defer(
            TAG_VALUES,
            [
                (resource_id, int(level), names[name], value, normalized(value))
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
        self.attach_new(instance_id, new.attachments)
        self._defer(METADATA, [(instance_id, key, value) for key, value in new.metadata.items()])
        if Level.SERIES in created:
            self._defer(
                METADATA,
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
            CHANGES,
            [(int(change), int(level), new.public_ids[level], now) for change, level in changes],
        )
        return StoreOutcome(instance_id, False, tuple(created), replaced, completed)

    def attach_new(self, internal_id: int, attachments: Sequence[Attachment]) -> None:
        self._defer(ATTACHMENTS, [attachment_row(internal_id, a) for a in attachments])

    def replace_main_tags(
        self,
        internal_id: int,
        level: Level,
        tags: dict[str, str],
        patient_tags: dict[str, str] | None = None,
    ) -> None:
        self._settle()
        self._execute(
            "UPDATE resources SET main_tags = ?, patient_tags = ? WHERE id = ?",
            (
                json.dumps(tags),
                None if patient_tags is None else json.dumps(patient_tags),
                internal_id,
            ),
        )
        self._execute("DELETE FROM tag_values WHERE resource_id = ?", (internal_id,))
        self._insert_tags(internal_id, level, tags)
        if patient_tags is not None:
            self._insert_tags(internal_id, level, patient_tags, Level.PATIENT)

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
        self.flush()  # the IndexInSeries of this batch's instances
        rows = self._execute(
            "SELECT m.value FROM resources r LEFT JOIN metadata m ON m.resource_id = r.id "
            "AND m.type = ? WHERE r.parent_id = ?",
            (int(MetadataType.IndexInSeries), series_id),
        ).fetchall()
        indexes = [int(row[0]) if row[0] is not None else None for row in rows]
        return series_status(expected, indexes) == "Complete"

    def _drop_instance(self, internal_id: int) -> tuple[str, ...]:
        """Deletes an instance being overwritten; its ancestors stay. Returns its files."""
        self.flush()  # it may have been stored earlier in this transaction
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
            f"SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE resource_id = ?", (internal_id,)
        ).fetchall()
        return [row_to_attachment(row) for row in rows]

    def delete_resource(self, internal_id: int, *, now: str) -> DeleteOutcome:
        self._settle()
        uuids = tuple(
            row[0]
            for row in self._execute(
                SUBTREE + "SELECT a.uuid FROM attachments a JOIN subtree s ON a.resource_id = s.id",
                (internal_id,),
            ).fetchall()
        )
        deleted = [
            (Level(row[0]), row[1])
            for row in self._execute(
                SUBTREE + "SELECT r.level, r.public_id FROM resources r JOIN subtree s "
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
        for chunk in chunks([public_id for _, public_id in deleted], 500):
            marks = ", ".join("?" * len(chunk))
            self._execute(f"DELETE FROM changes WHERE public_id IN ({marks})", chunk)
        return DeleteOutcome(uuids, remaining, tuple(deleted))

    # -- metadata and attachments: unconditional, or compare-and-set ---------------------------
    # A conditional write reads the row, compares it in Python, then changes it with a statement
    # that holds only if the row is still the one read (same revision and value or uuid; an
    # INSERT that does nothing if a row appeared): on PostgreSQL a concurrent writer in between
    # turns into a conflict, not a lost update.
    def _metadata_entry(self, internal_id: int, metadata_type: int) -> MetadataEntry | None:
        row = self._execute(
            "SELECT value, revision FROM metadata WHERE resource_id = ? AND type = ?",
            (internal_id, metadata_type),
        ).fetchone()
        return None if row is None else MetadataEntry(row[0], int(row[1]))

    def set_metadata(
        self, internal_id: int, metadata_type: int, value: str, *, expected: Expected | None = None
    ) -> int:
        self._settle()
        if expected is None:
            rows = self._execute(
                "INSERT INTO metadata (resource_id, type, value, revision) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (resource_id, type) DO UPDATE SET value = excluded.value, "
                "revision = metadata.revision + 1 RETURNING revision",
                (internal_id, metadata_type, value, FIRST_REVISION),
            ).fetchall()
            return int(rows[0][0])
        current = self._metadata_entry(internal_id, metadata_type)
        if current is None:
            _changed_one(
                self._execute(
                    "INSERT INTO metadata (resource_id, type, value, revision) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (resource_id, type) DO NOTHING",
                    (internal_id, metadata_type, value, FIRST_REVISION),
                )
            )
            return FIRST_REVISION
        _check(expected, current.revision, _md5(current.value))
        _changed_one(
            self._execute(
                "UPDATE metadata SET value = ?, revision = revision + 1 "
                "WHERE resource_id = ? AND type = ? AND revision = ? AND value = ?",
                (value, internal_id, metadata_type, current.revision, current.value),
            )
        )
        return current.revision + 1

    def delete_metadata(
        self, internal_id: int, metadata_type: int, *, expected: Expected | None = None
    ) -> bool:
        self._settle()
        if expected is None:
            cursor = self._execute(
                "DELETE FROM metadata WHERE resource_id = ? AND type = ?",
                (internal_id, metadata_type),
            )
            return bool(cursor.rowcount)
        current = self._metadata_entry(internal_id, metadata_type)
        if current is None:
            return False
        _check(expected, current.revision, _md5(current.value))
        _changed_one(
            self._execute(
                "DELETE FROM metadata WHERE resource_id = ? AND type = ? AND revision = ? "
                "AND value = ?",
                (internal_id, metadata_type, current.revision, current.value),
            )
        )
        return True

    def _attachment(self, internal_id: int, content_type: int) -> Attachment | None:
        row = self._execute(
            f"SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE resource_id = ? "
            "AND content_type = ?",
            (internal_id, content_type),
        ).fetchone()
        return None if row is None else row_to_attachment(row)

    def set_attachment(
        self, internal_id: int, attachment: Attachment, *, expected: Expected | None = None
    ) -> Attachment | None:
        self._settle()
        previous = self.delete_attachment(internal_id, attachment.content_type, expected=expected)
        if previous is None and expected is not None:  # absent when read: created, not replaced
            columns = ATTACHMENTS[1]
            _changed_one(
                self._execute(
                    f"INSERT INTO attachments ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))}) "
                    "ON CONFLICT (resource_id, content_type) DO NOTHING",
                    attachment_row(internal_id, attachment, FIRST_REVISION),
                )
            )
            return None
        revision = (previous.revision + 1) if previous else FIRST_REVISION
        self._dialect.insert_rows(
            self._connection, *ATTACHMENTS, [attachment_row(internal_id, attachment, revision)]
        )
        return previous

    def delete_attachment(
        self, internal_id: int, content_type: int, *, expected: Expected | None = None
    ) -> Attachment | None:
        self._settle()
        current = self._attachment(internal_id, content_type)
        if current is None:
            return None
        if expected is None:
            self._execute(
                "DELETE FROM attachments WHERE resource_id = ? AND content_type = ?",
                (internal_id, content_type),
            )
            return current
        _check(expected, current.revision, current.uncompressed_md5)
        _changed_one(
            self._execute(
                "DELETE FROM attachments WHERE resource_id = ? AND content_type = ? "
                "AND uuid = ? AND revision = ?",
                (internal_id, content_type, current.uuid, current.revision),
            )
        )
        return current

    def replace_attachment(self, internal_id: int, old_uuid: str, replacement: Attachment) -> bool:
        self._settle()
        cursor = self._execute(
            "UPDATE attachments SET uuid = ?, compression = ?, uncompressed_size = ?, "
            "uncompressed_md5 = ?, compressed_size = ?, compressed_md5 = ?, "
            "revision = revision + 1 "
            "WHERE resource_id = ? AND content_type = ? AND uuid = ?",
            (
                replacement.uuid,
                replacement.compression,
                replacement.uncompressed_size,
                replacement.uncompressed_md5,
                replacement.compressed_size,
                replacement.compressed_md5,
                internal_id,
                replacement.content_type,
                old_uuid,
            ),
        )
        return bool(cursor.rowcount)

    def log_change(self, change_type: ChangeType, level: Level, public_id: str, now: str) -> None:
        self._defer(CHANGES, [(int(change_type), int(level), public_id, now)])

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


def _md5(value: str) -> str:
    return hashlib.md5(value.encode("utf-8")).hexdigest()


def _check(expected: Expected, revision: int, md5: str) -> None:
    """Raises the ``Revision`` conflict unless the row found is the one ``expected``."""
    if not expected.matches(revision, md5):
        raise ObeliskError(code=ErrorCode.Revision)


def _changed_one(cursor: Any) -> None:
    """Raises the ``Revision`` conflict when a conditional statement found its row gone or
    changed (another writer came in between the read and the write)."""
    if cursor.rowcount != 1:
        raise ObeliskError(code=ErrorCode.Revision)
