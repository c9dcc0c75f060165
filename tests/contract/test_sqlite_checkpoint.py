"""The SQLite index copies its WAL into the database file in the background, not in commits."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from obelisk.index.sqlite import SqliteIndex, WalCheckpointer
from tests.contract.conftest import store_all
from tests.contract.dicom_files import SampleInstance


def test_commits_leave_the_checkpoint_to_a_background_thread(
    tmp_path: Path, samples: list[SampleInstance]
) -> None:
    path = tmp_path / "index.db"
    index = SqliteIndex(path, synchronous="NORMAL")
    try:
        connection = index._connect()
        writer_setting = connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        connection.close()
        assert writer_setting >= 10_000, "a commit does not copy the WAL every 1,000 pages"
        checkpointer = index._checkpointer
        assert isinstance(checkpointer, WalCheckpointer)
        before = path.stat().st_size
        done = checkpointer.checkpoints
        store_all(index, samples)
        deadline = time.monotonic() + 10
        while checkpointer.checkpoints < done + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.checkpoints >= done + 2, "checkpoints run on their own"
        assert path.stat().st_size > before, "the new pages were copied into the database file"
    finally:
        index.close()
    assert not checkpointer._thread.is_alive(), "closing stops the thread"
    with sqlite3.connect(path) as reopened:
        assert reopened.execute("SELECT count(*) FROM resources").fetchone()[0] > 0


def test_an_in_memory_index_has_no_checkpointer() -> None:
    index = SqliteIndex(":memory:")
    try:
        assert index._checkpointer is None
    finally:
        index.close()
