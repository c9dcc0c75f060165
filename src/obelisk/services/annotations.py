"""Metadata and attachments of resources, with Orthanc's built-in and user-defined names.

Revisions, as Orthanc ≥ 1.9.2 has them: every metadata and attachment has an ETag
``"<revision>-<md5>"`` (the revision counted from 0, the MD5 of the metadata value or of the
uncompressed attachment). A write or delete given ``If-Match: <that ETag>`` happens only if the
item is still that one, else fails with ``Revision`` (409); the check and the write are one index
transaction. With ``CheckRevisions``, changing an existing item needs ``If-Match``, and so does any
delete; creating one does not.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from obelisk.core.changes import (
    CONTENT_TYPE_NAMES,
    USER_RANGE,
    ChangeType,
    ContentType,
    MetadataType,
)
from obelisk.core.levels import Level
from obelisk.core.timestamps import now_iso
from obelisk.errors import (
    ConfigurationError,
    CorruptedFile,
    ErrorCode,
    Forbidden,
    InexistentItem,
    ObeliskError,
    ParameterOutOfRange,
    UnknownResource,
)
from obelisk.events import EventBus, ResourceChanged
from obelisk.index.base import (
    ABSENT,
    FIRST_REVISION,
    Attachment,
    Expected,
    Index,
    MetadataEntry,
)
from obelisk.services.files import COMPRESSION_NONE, AttachmentReader, encode_attachment
from obelisk.services.resources import ResourceService
from obelisk.storage.base import StorageArea


@dataclass(frozen=True, slots=True)
class NameTable:
    """Two-way names ↔ numbers, built-in and user-defined."""

    by_name: dict[str, int]
    by_number: dict[int, str]

    @classmethod
    def build(cls, builtin: dict[str, int], user: dict[str, Any], option: str) -> NameTable:
        by_name = dict(builtin)
        for name, spec in user.items():
            number = spec[0] if isinstance(spec, list) and spec else spec
            if not isinstance(number, int) or number not in USER_RANGE:
                raise ConfigurationError(
                    f'"{option}" entry "{name}" must be a number in 1024..65535'
                )
            by_name[name] = number
        return cls(by_name, {number: name for name, number in by_name.items()})

    def number(self, name: str) -> int:
        if name in self.by_name:
            return self.by_name[name]
        if name.isdigit():
            return int(name)
        raise InexistentItem(f"Unknown name: {name}")

    def name(self, number: int) -> str:
        return self.by_number.get(number, str(number))


@dataclass(frozen=True, slots=True)
class Revisioned:
    """A metadata value with its ETag."""

    value: str
    etag: str


def etag(revision: int, md5: str) -> str:
    """Orthanc's ETag of a metadata or attachment: ``"<revision from 0>-<md5>"``, quoted."""
    return f'"{revision - FIRST_REVISION}-{md5}"'


def attachment_etag(attachment: Attachment) -> str:
    return etag(attachment.revision, attachment.uncompressed_md5)


def metadata_etag(entry: MetadataEntry) -> str:
    return etag(entry.revision, hashlib.md5(entry.value.encode("utf-8")).hexdigest())


_IF_MATCH = re.compile(r"(\+?[0-9]+)-(.*)", re.DOTALL)
_MAX_REVISION = 2**63 - 1  # Orthanc reads it as a 64-bit integer


def parse_if_match(header: str) -> Expected:
    """The revision and MD5 of an ``If-Match`` header holding an ETag, quoted or not.

    As Orthanc: the revision is what comes before the first ``-``, the MD5 all that follows
    (possibly empty: then it matches nothing, a conflict rather than a bad request).
    """
    value = header.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    found = _IF_MATCH.fullmatch(value)
    if found is None or int(found[1]) > _MAX_REVISION:
        raise ParameterOutOfRange(
            details='The "if-match" HTTP header should contain the ETag (revision followed by '
            f"MD5 hash), but found: {value}"
        )
    return Expected(int(found[1]) + FIRST_REVISION, found[2])


def _expected(if_match: str | None, check_revisions: bool, *, delete: bool) -> Expected | None:
    """The precondition of a write or delete, None for an unconditional one."""
    if if_match is not None:
        return parse_if_match(if_match)
    if not check_revisions:
        return None
    if delete:
        raise ObeliskError(
            code=ErrorCode.Revision,
            details='HTTP header "If-Match" is missing, as "CheckRevisions" is "true"',
        )
    return ABSENT  # as Orthanc: without If-Match, one may create an item but not replace it


class AnnotationService:
    def __init__(
        self,
        index: Index,
        storage: StorageArea,
        resources: ResourceService,
        bus: EventBus,
        *,
        user_metadata: dict[str, Any],
        user_content_types: dict[str, Any],
        compress: bool,
        check_revisions: bool = False,
    ) -> None:
        """``check_revisions``: Orthanc's ``CheckRevisions`` (replacing or deleting an item
        needs its ``If-Match``)."""
        self._index = index
        self._check_revisions = check_revisions
        self._storage = storage
        self._resources = resources
        self._bus = bus
        self._compress = compress
        self.reader = AttachmentReader(storage)
        self.metadata_names = NameTable.build(
            {m.name: int(m) for m in MetadataType}, user_metadata, "UserMetadata"
        )
        self.content_names = NameTable.build(
            {name: int(t) for t, name in CONTENT_TYPE_NAMES.items()},
            user_content_types,
            "UserContentType",
        )

    # -- metadata ----------------------------------------------------------------------------
    def metadata(self, level: Level, public_id: str) -> dict[str, str]:
        """Name → value, in the order of the metadata numbers (as Orthanc lists them)."""
        resource = self._resources.get(level, public_id)
        numbered = dict(self._index.metadata(resource.internal_id))
        if level is not Level.INSTANCE:
            numbered[MetadataType.LastUpdate] = resource.last_update
        return {self.metadata_names.name(k): numbered[k] for k in sorted(numbered)}

    def get_metadata(self, level: Level, public_id: str, name: str) -> Revisioned:
        number = self.metadata_names.number(name)
        resource = self._resources.get(level, public_id)
        entry: MetadataEntry | None
        if number == MetadataType.LastUpdate and level is not Level.INSTANCE:
            entry = MetadataEntry(resource.last_update)
        else:
            entry = self._index.metadata_entry(resource.internal_id, number)
        if entry is None:
            raise InexistentItem(f"No metadata {name} on {public_id}")
        return Revisioned(entry.value, metadata_etag(entry))

    def set_metadata(
        self,
        level: Level,
        public_id: str,
        name: str,
        value: str,
        *,
        if_match: str | None = None,
    ) -> str:
        """Sets a user metadata; returns its new ETag. ``if_match``: the ``If-Match`` header."""
        number = self._user_metadata_number(name)
        expected = _expected(if_match, self._check_revisions, delete=False)
        resource = self._resources.get(level, public_id)
        with self._index.write() as writer:
            revision = writer.set_metadata(resource.internal_id, number, value, expected=expected)
            writer.log_change(ChangeType.UpdatedMetadata, level, public_id, now_iso())
        self._bus.publish(ResourceChanged(ChangeType.UpdatedMetadata, level, public_id, now_iso()))
        return metadata_etag(MetadataEntry(value, revision))

    def delete_metadata(
        self,
        level: Level,
        public_id: str,
        name: str,
        *,
        if_match: str | None = None,
    ) -> None:
        number = self._user_metadata_number(name)
        expected = _expected(if_match, self._check_revisions, delete=True)
        resource = self._resources.get(level, public_id)
        with self._index.write() as writer:
            if not writer.delete_metadata(resource.internal_id, number, expected=expected):
                raise UnknownResource(f"No metadata {name} on {public_id}")
            writer.log_change(ChangeType.UpdatedMetadata, level, public_id, now_iso())

    def _user_metadata_number(self, name: str) -> int:
        number = self.metadata_names.number(name)
        if number not in USER_RANGE:
            raise Forbidden(f"Metadata {name} is maintained by the server and cannot be changed")
        return number

    # -- attachments -------------------------------------------------------------------------
    def attachments(self, level: Level, public_id: str) -> list[Attachment]:
        resource = self._resources.get(level, public_id)
        return self._index.attachments(resource.internal_id)

    def attachment(self, level: Level, public_id: str, name: str) -> Attachment:
        number = self.content_names.number(name)
        for attachment in self.attachments(level, public_id):
            if attachment.content_type == number:
                return attachment
        raise UnknownResource(f"No attachment {name} on {public_id}")

    def attachment_name(self, attachment: Attachment) -> str:
        return self.content_names.name(attachment.content_type)

    def read(self, attachment: Attachment) -> bytes:
        return self.reader.read(attachment)

    def verify_md5(self, attachment: Attachment) -> None:
        stored = self.reader.read_stored(attachment)
        if hashlib.md5(stored).hexdigest() != attachment.compressed_md5:
            raise CorruptedFile(f"Attachment {attachment.uuid} does not match its MD5")
        data = self.reader.read(attachment)
        if hashlib.md5(data).hexdigest() != attachment.uncompressed_md5:
            raise CorruptedFile(f"Attachment {attachment.uuid} does not match its MD5")

    def put_attachment(
        self,
        level: Level,
        public_id: str,
        name: str,
        data: bytes,
        *,
        if_match: str | None = None,
    ) -> str:
        """Adds or replaces a user attachment; returns its new ETag."""
        number = self.content_names.number(name)
        if number not in USER_RANGE:
            raise Forbidden(f"Attachment {name} is maintained by the server and cannot be set")
        expected = _expected(if_match, self._check_revisions, delete=False)
        resource = self._resources.get(level, public_id)
        stored, attachment = encode_attachment(number, data, compress=self._compress)
        self._storage.create(attachment.uuid, stored)
        try:
            with self._index.write() as writer:
                previous = writer.set_attachment(
                    resource.internal_id, attachment, expected=expected
                )
                writer.log_change(ChangeType.UpdatedAttachment, level, public_id, now_iso())
        except BaseException:
            self._storage.remove(attachment.uuid)
            raise
        if previous is not None:
            self._storage.remove(previous.uuid)
        revision = previous.revision + 1 if previous is not None else FIRST_REVISION
        return etag(revision, attachment.uncompressed_md5)

    def delete_attachment(
        self,
        level: Level,
        public_id: str,
        name: str,
        *,
        if_match: str | None = None,
    ) -> None:
        number = self.content_names.number(name)
        if number == ContentType.Dicom:
            raise Forbidden("The DICOM file of an instance cannot be deleted as an attachment")
        expected = _expected(if_match, self._check_revisions, delete=True)
        resource = self._resources.get(level, public_id)
        with self._index.write() as writer:
            removed = writer.delete_attachment(resource.internal_id, number, expected=expected)
            if removed is None:
                raise UnknownResource(f"No attachment {name} on {public_id}")
            writer.log_change(ChangeType.UpdatedAttachment, level, public_id, now_iso())
        self._storage.remove(removed.uuid)

    def set_compression(self, level: Level, public_id: str, name: str, *, compress: bool) -> None:
        """Stores the attachment again, zlib-compressed or not (a no-op when it already is so).

        Crash-safe: the new blob is durable before the index row points at it, and the old blob
        is removed only after that commit; a crash in between leaves an orphan blob at worst.
        """
        number = self.content_names.number(name)
        resource = self._resources.get(level, public_id)
        current = next(
            (a for a in self._index.attachments(resource.internal_id) if a.content_type == number),
            None,
        )
        if current is None:  # Orthanc answers "Unknown resource" here, not "inexistent item"
            raise UnknownResource(f"No attachment {name} on {public_id}")
        if (current.compression != COMPRESSION_NONE) == compress:
            return
        data = self.reader.read(current)
        if current.uncompressed_md5 and hashlib.md5(data).hexdigest() != current.uncompressed_md5:
            raise CorruptedFile(f"Attachment {current.uuid} does not match its MD5")
        stored, replacement = encode_attachment(number, data, compress=compress)
        self._storage.create(replacement.uuid, stored)
        try:
            with self._index.write() as writer:
                if not writer.replace_attachment(resource.internal_id, current.uuid, replacement):
                    raise ObeliskError(
                        f"Attachment {name} of {public_id} changed meanwhile",
                        code=ErrorCode.Revision,
                    )
                if number in USER_RANGE:  # as Orthanc, which logs user attachments only
                    writer.log_change(ChangeType.UpdatedAttachment, level, public_id, now_iso())
        except BaseException:
            self._storage.remove(replacement.uuid)
            raise
        self._storage.remove(current.uuid)
