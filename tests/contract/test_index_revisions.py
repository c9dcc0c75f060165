"""Revisions of metadata and attachments, and their compare-and-set writes (``expected=``)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

import pytest

from obelisk.core.changes import MetadataType
from obelisk.core.levels import Level
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.index.base import (
    ABSENT,
    FIRST_REVISION,
    Attachment,
    Expected,
    Index,
    IndexWriter,
    MetadataEntry,
)

from .conftest import Backend, Loaded, store_all
from .dicom_files import SampleInstance

USER = 1024


def _instance(loaded: Loaded) -> int:
    return loaded.internal_id(Level.INSTANCE, loaded.public_ids(Level.INSTANCE)[0])


def _md5(value: str) -> str:
    return hashlib.md5(value.encode()).hexdigest()


def _attachment(tag: str) -> Attachment:
    uuid = f"00000000-0000-4000-8000-0000000000{tag}"
    return Attachment(USER, uuid, 3, _md5(tag), 3, _md5(tag))


def _user_attachment(index: Index, internal_id: int) -> Attachment | None:
    return next((a for a in index.attachments(internal_id) if a.content_type == USER), None)


def _conflict(index: Index, write: Callable[[IndexWriter], object]) -> None:
    with pytest.raises(ObeliskError) as raised, index.write() as writer:
        write(writer)
    assert raised.value.code is ErrorCode.Revision


# -- metadata ---------------------------------------------------------------------------------
def test_metadata_revision_starts_at_first_and_goes_up_by_one(loaded: Loaded) -> None:
    index, instance = loaded.index, _instance(loaded)
    stored_at_ingest = index.metadata_entry(instance, MetadataType.TransferSyntax)
    assert stored_at_ingest == MetadataEntry("1.2.840.10008.1.2.1", FIRST_REVISION)
    assert index.metadata_entry(instance, USER) is None
    with index.write() as writer:
        assert writer.set_metadata(instance, USER, "a") == FIRST_REVISION
        assert writer.set_metadata(instance, USER, "b") == FIRST_REVISION + 1
    assert index.metadata_entry(instance, USER) == MetadataEntry("b", FIRST_REVISION + 1)
    with index.write() as writer:
        assert writer.delete_metadata(instance, USER)
        assert writer.set_metadata(instance, USER, "c") == FIRST_REVISION  # a new item
    assert index.metadata_entry(instance, USER) == MetadataEntry("c", FIRST_REVISION)


def test_metadata_compare_and_set(loaded: Loaded) -> None:
    index, instance = loaded.index, _instance(loaded)
    with index.write() as writer:
        writer.set_metadata(instance, USER, "a")
    current = Expected(FIRST_REVISION, _md5("a"))
    for stale in (Expected(FIRST_REVISION + 1, _md5("a")), Expected(FIRST_REVISION, _md5("x"))):
        _conflict(index, lambda w, e=stale: w.set_metadata(instance, USER, "lost", expected=e))
    _conflict(index, lambda w: w.set_metadata(instance, USER, "lost", expected=ABSENT))
    assert index.metadata_entry(instance, USER) == MetadataEntry("a", FIRST_REVISION)
    with index.write() as writer:
        assert writer.set_metadata(instance, USER, "b", expected=current) == FIRST_REVISION + 1
    # The same expectation again is stale now: the first writer wins, the second one fails.
    _conflict(index, lambda w: w.set_metadata(instance, USER, "lost", expected=current))
    assert index.metadata_entry(instance, USER) == MetadataEntry("b", FIRST_REVISION + 1)


def test_metadata_expected_creates_a_missing_item(loaded: Loaded) -> None:
    index, instance = loaded.index, _instance(loaded)
    with index.write() as writer:
        assert writer.set_metadata(instance, USER, "a", expected=ABSENT) == FIRST_REVISION
        stale = Expected(FIRST_REVISION + 7, _md5("q"))
        assert writer.set_metadata(instance, USER + 1, "b", expected=stale) == FIRST_REVISION
    assert index.metadata(instance)[USER] == "a" and index.metadata(instance)[USER + 1] == "b"


def test_metadata_compare_and_delete(loaded: Loaded) -> None:
    index, instance = loaded.index, _instance(loaded)
    with index.write() as writer:
        writer.set_metadata(instance, USER, "a")
        writer.set_metadata(instance, USER, "b")
    _conflict(
        index,
        lambda w: w.delete_metadata(instance, USER, expected=Expected(FIRST_REVISION, _md5("b"))),
    )
    assert index.metadata_entry(instance, USER) == MetadataEntry("b", FIRST_REVISION + 1)
    current = Expected(FIRST_REVISION + 1, _md5("b"))
    with index.write() as writer:
        assert writer.delete_metadata(instance, USER, expected=current)
        assert not writer.delete_metadata(instance, USER, expected=current)
    assert index.metadata_entry(instance, USER) is None


def test_a_conflict_rolls_back_its_whole_transaction(loaded: Loaded) -> None:
    index, instance = loaded.index, _instance(loaded)

    def write(writer: IndexWriter) -> None:
        writer.set_metadata(instance, USER + 1, "written before the conflict")
        writer.set_metadata(instance, USER, "x", expected=Expected(FIRST_REVISION, "0" * 32))

    with index.write() as writer:
        writer.set_metadata(instance, USER, "a")
    _conflict(index, write)
    assert USER + 1 not in index.metadata(instance)


# -- attachments ------------------------------------------------------------------------------
def test_attachment_revision_goes_up_with_each_replacement(loaded: Loaded) -> None:
    index, instance = loaded.index, _instance(loaded)
    first, second = _attachment("01"), _attachment("02")
    with index.write() as writer:
        assert writer.set_attachment(instance, first) is None
    assert _user_attachment(index, instance) == first  # revision FIRST_REVISION
    with index.write() as writer:
        assert writer.set_attachment(instance, second) == first
    found = _user_attachment(index, instance)
    assert found is not None and found.uuid == second.uuid
    assert found.revision == FIRST_REVISION + 1


def test_attachment_compare_and_set(loaded: Loaded) -> None:
    index, instance = loaded.index, _instance(loaded)
    first, second, lost = _attachment("01"), _attachment("02"), _attachment("ff")
    with index.write() as writer:
        writer.set_attachment(instance, first)
    current = Expected(FIRST_REVISION, first.uncompressed_md5)
    for stale in (
        Expected(FIRST_REVISION + 1, first.uncompressed_md5),
        Expected(FIRST_REVISION, _md5("other")),
        ABSENT,
    ):
        _conflict(index, lambda w, e=stale: w.set_attachment(instance, lost, expected=e))
    assert _user_attachment(index, instance) == first
    with index.write() as writer:
        assert writer.set_attachment(instance, second, expected=current) == first
    _conflict(index, lambda w: w.set_attachment(instance, lost, expected=current))
    found = _user_attachment(index, instance)
    assert found is not None and (found.uuid, found.revision) == (second.uuid, FIRST_REVISION + 1)
    assert lost.uuid not in set(index.all_attachment_uuids())


def test_attachment_expected_creates_a_missing_item(loaded: Loaded) -> None:
    index, instance = loaded.index, _instance(loaded)
    with index.write() as writer:
        assert writer.set_attachment(instance, _attachment("01"), expected=ABSENT) is None
    assert _user_attachment(index, instance) == _attachment("01")
    with index.write() as writer:
        assert writer.delete_attachment(instance, USER) == _attachment("01")
        stale = Expected(FIRST_REVISION + 3, "0" * 32)
        assert writer.set_attachment(instance, _attachment("02"), expected=stale) is None
    assert _user_attachment(index, instance) == _attachment("02")


def test_attachment_compare_and_delete(loaded: Loaded) -> None:
    index, instance = loaded.index, _instance(loaded)
    first = _attachment("01")
    with index.write() as writer:
        writer.set_attachment(instance, first)
    stale = Expected(FIRST_REVISION, _md5("other"))
    _conflict(index, lambda w: w.delete_attachment(instance, USER, expected=stale))
    assert _user_attachment(index, instance) == first
    current = Expected(FIRST_REVISION, first.uncompressed_md5)
    with index.write() as writer:
        assert writer.delete_attachment(instance, USER, expected=current) == first
        assert writer.delete_attachment(instance, USER, expected=current) is None
    assert _user_attachment(index, instance) is None


# -- two writers at once ----------------------------------------------------------------------
def _race(backend: Backend, samples: list[SampleInstance], kind: str) -> None:
    """Writer A changes the item and holds its transaction open; writer B, on another
    connection, tries a compare-and-set from the same revision: it must fail once A commits."""
    first_index = backend.open()
    store_all(first_index, samples[:1])
    instance = first_index.lookup(samples[0].public_id(Level.INSTANCE), Level.INSTANCE)
    assert instance is not None
    internal_id = instance.internal_id
    original = _attachment("01")
    with first_index.write() as writer:
        writer.set_metadata(internal_id, USER, "a")
        writer.set_attachment(internal_id, original)
    expected = Expected(
        FIRST_REVISION, _md5("a") if kind != "attachment" else original.uncompressed_md5
    )

    def write(writer: IndexWriter, value: str) -> object:
        if kind == "metadata":
            return writer.set_metadata(internal_id, USER, value, expected=expected)
        if kind == "attachment":
            return writer.set_attachment(internal_id, _attachment(value), expected=expected)
        return writer.delete_metadata(internal_id, USER, expected=expected)

    second_index = backend.open()
    outcome: list[object] = []

    def second_writer() -> None:
        try:
            with second_index.write() as writer:
                outcome.append(write(writer, "0b"))
        except BaseException as exc:
            outcome.append(exc)

    with first_index.write() as writer:
        write(writer, "0a")
        thread = threading.Thread(target=second_writer)
        thread.start()
        time.sleep(0.3)  # B reads the old row, then waits for A's lock
    thread.join(timeout=30)
    assert len(outcome) == 1
    if kind == "delete" and outcome[0] is False:
        pass  # B started after A's commit (SQLite serialises writers): nothing left to delete
    else:
        assert isinstance(outcome[0], ObeliskError) and outcome[0].code is ErrorCode.Revision
    if kind == "metadata":
        assert first_index.metadata_entry(internal_id, USER) == MetadataEntry(
            "0a", FIRST_REVISION + 1
        )
    elif kind == "attachment":
        found = _user_attachment(first_index, internal_id)
        assert found is not None and found.uuid == _attachment("0a").uuid
    else:
        assert first_index.metadata_entry(internal_id, USER) is None


@pytest.mark.parametrize("kind", ["metadata", "attachment", "delete"])
def test_concurrent_writers_from_one_revision_one_wins(
    shared_backend: Backend, samples: list[SampleInstance], kind: str
) -> None:
    _race(shared_backend, samples, kind)
