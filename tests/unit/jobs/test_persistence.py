"""Durability beyond Orthanc: every job is saved after each step and resumes after a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from obelisk.jobs.engine import JobEngine
from obelisk.jobs.info import JobState
from obelisk.jobs.kinds import noop
from obelisk.jobs.sqlstore import SqliteJobStore
from tests.unit.jobs.conftest import wait_for, wait_state


def engine_on(path: Path, tmp_path: Path, *, node: str = "node-a", **options: object) -> JobEngine:
    engine = JobEngine(
        SqliteJobStore(path),
        output_root=tmp_path / "outputs",
        node=node,
        poll_interval=0.05,
        output_grace=0.0,
        **options,  # type: ignore[arg-type]
    )
    engine.register_kind(noop.TYPE_NAME, noop.rebuild, noop.validate)
    return engine


def test_restart_resumes_from_the_last_completed_step(tmp_path: Path) -> None:
    database = tmp_path / "index.db"
    first = engine_on(database, tmp_path)
    first.start()
    job_id = first.submit_requests([{"Type": "Noop", "Steps": 40, "StepDuration": 0.02}])[0]
    wait_for(lambda: (first.info(job_id) or _missing()).content["Position"] >= 10)
    first.close()  # workers save their step and leave the job Pending
    saved = SqliteJobStore(database).get(job_id)
    assert saved is not None and saved.state == "Pending"
    stopped_at = saved.snapshot["Position"]
    assert stopped_at >= 10

    second = engine_on(database, tmp_path)
    second.start()
    info = second.wait(job_id, 20)
    second.close()
    assert info is not None and info.state is JobState.SUCCESS
    assert info.content["Position"] == 40
    assert info.content["Rebuilds"] == [stopped_at]  # resumed, not restarted
    assert info.runtime >= 0.7


def test_a_crashed_nodes_running_jobs_go_back_to_pending(tmp_path: Path) -> None:
    database = tmp_path / "index.db"
    store = SqliteJobStore(database)
    engine = engine_on(database, tmp_path)
    engine.stop_dispatch()
    engine.start()
    job_id = engine.submit_requests([{"Type": "Noop", "Steps": 3}])[0]
    engine.close()
    # As a kill -9 leaves it: Running, leased by an earlier process of this node.
    assert store.update(
        job_id,
        {"state": "Running", "lease_owner": "node-a/dead", "lease_expiry": time.time() + 600},
    )
    other_node = engine_on(database, tmp_path, node="node-b")
    other_node.start()
    time.sleep(0.3)
    assert other_node.info(job_id) is not None
    assert (other_node.info(job_id) or _missing()).state is JobState.RUNNING  # lease still valid
    other_node.close()
    same_node = engine_on(database, tmp_path, node="node-a")
    same_node.start()
    info = same_node.wait(job_id, 10)
    same_node.close()
    assert info is not None and info.state is JobState.SUCCESS


def test_an_expired_lease_makes_the_job_claimable(tmp_path: Path) -> None:
    database = tmp_path / "index.db"
    store = SqliteJobStore(database)
    seed = engine_on(database, tmp_path)
    seed.stop_dispatch()
    seed.start()
    job_id = seed.submit_requests([{"Type": "Noop", "Steps": 2}])[0]
    seed.close()
    store.update(
        job_id, {"state": "Running", "lease_owner": "elsewhere/x", "lease_expiry": time.time() + 1}
    )
    engine = engine_on(database, tmp_path, node="node-b")
    engine.start()
    time.sleep(0.3)
    assert (engine.info(job_id) or _missing()).state is JobState.RUNNING
    info = engine.wait(job_id, 10)  # claimed once the lease expired
    engine.close()
    assert info is not None and info.state is JobState.SUCCESS


def test_paused_stays_paused_and_history_survives(tmp_path: Path) -> None:
    database = tmp_path / "index.db"
    first = engine_on(database, tmp_path, history_size=2)
    first.start()
    done = []
    for _ in range(3):  # one after the other, so that they complete in this order
        done.append(first.submit_requests([{"Type": "Noop"}])[0])
        first.wait(done[-1], 10)
    first.stop_dispatch()
    paused, retrying = first.submit_requests(
        [{"Type": "Noop"}, {"Type": "Noop", "RetryAt": 0, "RetryDelay": 600}]
    )
    first.pause(paused)
    first.start_dispatch()
    wait_state(first, retrying, JobState.RETRY)
    first.close()

    second = engine_on(database, tmp_path, history_size=1)
    second.stop_dispatch()
    second.start()
    assert (second.info(paused) or _missing()).state is JobState.PAUSED
    assert (second.info(retrying) or _missing()).state is JobState.PENDING  # Retry → Pending
    assert [h.id for h in second.history()] == done[2:]  # trimmed to the new size
    second.close()


def test_start_without_saved_jobs_forgets_them(tmp_path: Path) -> None:
    database = tmp_path / "index.db"
    first = engine_on(database, tmp_path)
    first.stop_dispatch()
    first.start()
    job_id = first.submit_requests([{"Type": "Noop"}])[0]
    first.close()
    second = engine_on(database, tmp_path)
    second.start(load_saved=False)
    assert second.info(job_id) is None
    second.close()


def test_saved_jobs_of_unknown_types_are_left_aside(tmp_path: Path) -> None:
    database = tmp_path / "index.db"
    first = engine_on(database, tmp_path)
    first.stop_dispatch()
    first.start()
    job_id = first.submit_requests([{"Type": "Noop"}])[0]
    first.close()
    bare = JobEngine(SqliteJobStore(database), output_root=tmp_path / "o", node="node-a")
    bare.start()
    time.sleep(0.3)
    assert (bare.info(job_id) or _missing()).state is JobState.PENDING
    bare.close()


def test_every_step_is_persisted(tmp_path: Path) -> None:
    database = tmp_path / "index.db"
    engine = engine_on(database, tmp_path)
    engine.start()
    job_id = engine.submit_requests([{"Type": "Noop", "Steps": 100, "StepDuration": 0.01}])[0]
    reader = SqliteJobStore(database)
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = reader.get(job_id)
        assert record is not None
        seen.add(record.snapshot["Position"])
        if record.state == "Success":
            break
        time.sleep(0.005)
    engine.close()
    assert len(seen) > 20  # another connection sees the positions advance


def _missing() -> object:
    pytest.fail("job not found")
