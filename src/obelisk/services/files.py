"""Attachments as bytes: Orthanc's zlib compression and MD5 bookkeeping in one place."""

from __future__ import annotations

import hashlib
import struct
import uuid as uuid_module
import zlib
from collections.abc import Iterator

from obelisk.errors import CorruptedFile
from obelisk.index.base import Attachment
from obelisk.storage.base import StorageArea

COMPRESSION_NONE = 0
COMPRESSION_ZLIB = 1  # Orthanc's "ZlibWithSize": uncompressed size (uint64 LE) + zlib stream


def encode_attachment(
    content_type: int, data: bytes, *, compress: bool, uuid: str | None = None
) -> tuple[bytes, Attachment]:
    """Returns the bytes to store and the attachment record describing them (under ``uuid``,
    else a new one)."""
    md5 = hashlib.md5(data).hexdigest()
    if compress:
        stored = struct.pack("<Q", len(data)) + zlib.compress(data, 6)
        stored_md5 = hashlib.md5(stored).hexdigest()
        compression = COMPRESSION_ZLIB
    else:
        stored, stored_md5, compression = data, md5, COMPRESSION_NONE
    attachment = Attachment(
        content_type=content_type,
        uuid=uuid or str(uuid_module.uuid4()),
        uncompressed_size=len(data),
        uncompressed_md5=md5,
        compressed_size=len(stored),
        compressed_md5=stored_md5,
        compression=compression,
    )
    return stored, attachment


def decode_attachment(attachment: Attachment, stored: bytes) -> bytes:
    if attachment.compression == COMPRESSION_NONE:
        return stored
    if len(stored) < 8:
        raise CorruptedFile(f"Compressed attachment {attachment.uuid} is truncated")
    (size,) = struct.unpack("<Q", stored[:8])
    data = zlib.decompress(stored[8:])
    if len(data) != size:
        raise CorruptedFile(f"Compressed attachment {attachment.uuid} has a wrong size")
    return data


class AttachmentReader:
    """Reads attachments back from the storage area, decompressing when needed."""

    def __init__(self, storage: StorageArea) -> None:
        self.storage = storage

    def read(self, attachment: Attachment) -> bytes:
        return decode_attachment(attachment, self.storage.read(attachment.uuid))

    def read_stored(self, attachment: Attachment) -> bytes:
        """The bytes as stored (compressed if compression is on)."""
        return self.storage.read(attachment.uuid)

    def chunks(self, attachment: Attachment, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        if attachment.compression == COMPRESSION_NONE:
            return self.storage.open_chunks(attachment.uuid, chunk_size)
        return iter([self.read(attachment)])

    def read_range(self, attachment: Attachment, start: int, end: int) -> bytes:
        if attachment.compression == COMPRESSION_NONE:
            return self.storage.read_range(attachment.uuid, start, end)
        return self.read(attachment)[start:end]
