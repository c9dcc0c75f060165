"""The group committer: one transaction per batch, retried when writers deadlock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from obelisk.errors import ErrorCode, ObeliskError
from obelisk.events import EventBus
from obelisk.index.sqlite import SqliteIndex
from obelisk.services.ingest import IngestOptions, IngestService, Origin, StoreStatus
from obelisk.storage.memory import MemoryStorage
from tests.dicom_factory import make_dicom


class ConflictingIndex(SqliteIndex):
    """An index whose first ``conflicts`` write transactions fail as a deadlock would."""

    def __init__(self, conflicts: int) -> None:
        self.conflicts = self.attempts = 0
        super().__init__(":memory:")  # creates the schema through write()
        self.conflicts, self.attempts = conflicts, 0

    @contextmanager
    def write(self) -> Iterator[Any]:
        self.attempts += 1
        if self.conflicts:
            self.conflicts -= 1
            raise ObeliskError("deadlock", code=ErrorCode.DatabaseCannotSerialize)
        with super().write() as writer:
            yield writer


def _ingest(index: SqliteIndex) -> IngestService:
    return IngestService(index, MemoryStorage(), EventBus(), IngestOptions())


def test_a_conflicting_transaction_is_tried_again() -> None:
    index = ConflictingIndex(conflicts=2)
    ingest = _ingest(index)
    try:
        result = ingest.store(make_dicom(), Origin("RestApi"))
    finally:
        ingest.close()
    assert result.status is StoreStatus.Success
    assert index.attempts == 3
    assert index.lookup(result.ids.instance) is not None


def test_a_lasting_conflict_fails_the_instance_and_stores_nothing() -> None:
    index = ConflictingIndex(conflicts=100)
    ingest = _ingest(index)
    try:
        with pytest.raises(ObeliskError):
            ingest.store(make_dicom(), Origin("RestApi"))
    finally:
        ingest.close()
    assert index.totals().instances == 0
