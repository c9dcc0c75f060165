"""What the SQL index shares between its reader and its writer: the driver connection, the dialect
that adapts the SQL to SQLite or PostgreSQL, the table columns and how rows become records."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from obelisk.core.levels import Level
from obelisk.core.matching import normalize
from obelisk.core.tags import MAIN_TAGS
from obelisk.index.base import (
    Attachment,
    Resource,
)

RESOURCE_COLUMNS = (
    "r.id, r.level, r.public_id, r.parent_id, p.public_id, r.main_tags, r.patient_tags, "
    "r.is_stable, r.last_update, r.protected"
)
ATTACHMENT_COLUMNS = (
    "content_type, uuid, uncompressed_size, uncompressed_md5, compressed_size, compressed_md5, "
    "compression, revision"
)
SUBTREE = (
    "WITH RECURSIVE subtree(id) AS (SELECT CAST(? AS BIGINT) UNION ALL "
    "SELECT r.id FROM resources r JOIN subtree s ON r.parent_id = s.id) "
)
NAME_TO_TAG = {level: {name: tag for tag, name in MAIN_TAGS[level]} for level in Level}


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


def chunks(values: Sequence[Any], size: int) -> Iterator[list[Any]]:
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


def row_to_attachment(row: Sequence[Any]) -> Attachment:
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


def attachment_row(internal_id: int, attachment: Attachment, revision: int = 1) -> tuple[Any, ...]:
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


def row_to_resource(row: Sequence[Any], children: list[str] | None = None) -> Resource:
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
TAG_VALUES = ("tag_values", ("resource_id", "level", "tag", "value", "value_norm"))
ATTACHMENTS = (
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
METADATA = ("metadata", ("resource_id", "type", "value"))
CHANGES = ("changes", ("change_type", "level", "public_id", "date"))


def normalized(value: str) -> str:
    """:func:`normalize`, with a shortcut for ASCII (nothing to decompose)."""
    return value.upper() if value.isascii() else normalize(value)
