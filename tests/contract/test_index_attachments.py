"""Swapping the blob behind an attachment row (``IndexWriter.replace_attachment``)."""

from __future__ import annotations

import dataclasses

import pytest

from obelisk.core.changes import ContentType
from obelisk.core.levels import Level
from obelisk.index.base import Attachment, Index

from .conftest import Loaded


def _instance(loaded: Loaded) -> int:
    return loaded.internal_id(Level.INSTANCE, loaded.public_ids(Level.INSTANCE)[0])


def _attachment(index: Index, internal_id: int, content_type: int) -> Attachment:
    found = {a.content_type: a for a in index.attachments(internal_id)}
    return found[content_type]


def _compressed(original: Attachment, uuid: str) -> Attachment:
    return dataclasses.replace(
        original,
        uuid=uuid,
        compression=1,
        compressed_size=original.uncompressed_size // 2,
        compressed_md5="0" * 32,
    )


def test_replace_points_the_row_at_the_new_blob(loaded: Loaded) -> None:
    index, internal_id = loaded.index, _instance(loaded)
    before = _attachment(index, internal_id, ContentType.Dicom)
    totals_before = index.totals()
    new = _compressed(before, "00000000-0000-4000-8000-000000000001")
    with index.write() as writer:
        assert writer.replace_attachment(internal_id, before.uuid, new)
    after = _attachment(index, internal_id, ContentType.Dicom)
    assert after == dataclasses.replace(new, revision=before.revision + 1)
    uuids = set(index.all_attachment_uuids())
    assert new.uuid in uuids and before.uuid not in uuids
    files = index.instance_files(internal_id)
    assert [f.attachment.uuid for f in files] == [new.uuid]
    totals = index.totals()
    assert totals.uncompressed_size == totals_before.uncompressed_size
    assert totals.compressed_size == (
        totals_before.compressed_size - before.compressed_size + new.compressed_size
    )


def test_replace_of_a_stale_uuid_changes_nothing(loaded: Loaded) -> None:
    index, internal_id = loaded.index, _instance(loaded)
    before = _attachment(index, internal_id, ContentType.Dicom)
    stale = _compressed(before, "00000000-0000-4000-8000-000000000002")
    with index.write() as writer:
        assert not writer.replace_attachment(internal_id, "not-the-current-uuid", stale)
        # No attachment of that type at all: nothing to replace either.
        other = dataclasses.replace(stale, content_type=4321)
        assert not writer.replace_attachment(internal_id, before.uuid, other)
    assert index.attachments(internal_id) == [before]


def test_replace_is_rolled_back_with_its_transaction(loaded: Loaded) -> None:
    index, internal_id = loaded.index, _instance(loaded)
    before = _attachment(index, internal_id, ContentType.Dicom)
    new = _compressed(before, "00000000-0000-4000-8000-000000000003")
    with pytest.raises(RuntimeError), index.write() as writer:
        assert writer.replace_attachment(internal_id, before.uuid, new)
        raise RuntimeError("crash before commit")
    assert index.attachments(internal_id) == [before]


def test_replace_twice_bumps_the_revision_each_time(loaded: Loaded) -> None:
    index, internal_id = loaded.index, _instance(loaded)
    user = Attachment(1025, "00000000-0000-4000-8000-00000000000a", 3, "m" * 32, 3, "m" * 32)
    with index.write() as writer:
        writer.set_attachment(internal_id, user)
    first = _compressed(user, "00000000-0000-4000-8000-00000000000b")
    second = dataclasses.replace(user, uuid="00000000-0000-4000-8000-00000000000c")
    with index.write() as writer:
        assert writer.replace_attachment(internal_id, user.uuid, first)
    with index.write() as writer:
        assert writer.replace_attachment(internal_id, first.uuid, second)
    assert _attachment(index, internal_id, 1025) == dataclasses.replace(second, revision=3)
    assert _attachment(index, internal_id, ContentType.Dicom).compression == 0
