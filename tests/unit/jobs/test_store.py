"""The JobStore protocol on every backend (memory, SQLite, PostgreSQL when reachable), and two
engines sharing one PostgreSQL queue."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obelisk.jobs.engine import JobEngine
from obelisk.jobs.info import JobState
from obelisk.jobs.kinds.noop import NoopJob
from obelisk.jobs.model import JobContext, StepResult
from obelisk.jobs.sqlstore import PostgresJobStore, SqliteJobStore
from obelisk.jobs.store import JobRecord, JobStore, MemoryJobStore

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; skipped when PostgreSQL is unreachable."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"PostgreSQL unreachable at {PG_ADMIN}: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    name = f"obelisk_jobs_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "memory":
        found: JobStore = MemoryJobStore()
    elif request.param == "sqlite":
        found = SqliteJobStore(tmp_path / "index.db")
    else:
        found = PostgresJobStore(request.getfixturevalue("pg_url"))
    yield found
    found.close()


def record(priority: int = 0, type_name: str = "Noop", state: str = "Pending") -> JobRecord:
    now = time.time()
    return JobRecord(
        id=str(uuid.uuid4()),
        type_name=type_name,
        state=state,
        priority=priority,
        creation_time=now,
        last_change_time=now,
        snapshot={"Steps": 1, "Nested": {"a": [1, 2]}},
        content={"Description": "x"},
    )


def test_insert_get_round_trip(store: JobStore) -> None:
    original = record(priority=-4)
    store.insert([original])
    found = store.get(original.id)
    assert found is not None
    assert found.snapshot == {"Steps": 1, "Nested": {"a": [1, 2]}}
    assert (found.priority, found.state, found.order_key) == (-4, "Pending", original.order_key)
    assert store.get("nope") is None
    assert [r.id for r in store.all()] == [original.id]


def test_claim_order_types_and_leases(store: JobStore) -> None:
    low, high, other = record(0), record(5), record(9, type_name="Other")
    store.insert([low, high, other])
    now = time.time()
    first = store.claim("n/1", ["Noop"], now, now + 30)
    assert first is not None and first.id == high.id and first.state == "Running"
    second = store.claim("n/2", ["Noop"], now, now + 30)
    assert second is not None and second.id == low.id
    assert store.claim("n/3", ["Noop"], now, now + 30) is None
    assert store.claim("n/3", [], now, now + 30) is None
    # Expired lease: claimable again by someone else
    stolen = store.claim("n/3", ["Noop"], now + 31, now + 60)
    assert stolen is not None and stolen.lease_owner == "n/3"
    assert store.save_step(stolen.id, "n/1", {"progress": 0.5}) == (False, None)
    assert store.save_step(stolen.id, "n/3", {"progress": 0.5}) == (True, None)


def test_compare_and_set_update(store: JobStore) -> None:
    job = record()
    store.insert([job])
    assert not store.update(job.id, {"state": "Paused"}, states=["Running"])
    assert store.update(job.id, {"state": "Paused"}, states=["Pending"])
    assert not store.update(job.id, {"state": "Failure"}, states=["Pending"], complete=True)
    assert store.update(job.id, {"state": "Failure"}, states=["Paused"], complete=True)
    found = store.get(job.id)
    assert found is not None and found.completion_seq is not None
    with pytest.raises(ValueError):
        store.update(job.id, {"id": "x"})


def test_requests_reach_the_worker(store: JobStore) -> None:
    job = record()
    store.insert([job])
    now = time.time()
    store.claim("n/1", ["Noop"], now, now + 30)
    assert store.update(job.id, {"request": "pause"}, states=["Running"])
    assert store.save_step(job.id, "n/1", {"runtime": 1.0}) == (True, "pause")


def test_recover_and_retries(store: JobStore) -> None:
    mine, foreign, expired, retry = record(), record(), record(), record()
    store.insert([mine, foreign, expired, retry])
    now = time.time()
    store.update(mine.id, {"state": "Running", "lease_owner": "me/old", "lease_expiry": now + 99})
    store.update(foreign.id, {"state": "Running", "lease_owner": "you/1", "lease_expiry": now + 99})
    store.update(expired.id, {"state": "Running", "lease_owner": "you/2", "lease_expiry": now - 1})
    store.update(retry.id, {"state": "Retry", "retry_at": now + 99})
    assert store.recover("me", now) == 3
    states = {r.id: r.state for r in store.all()}
    assert states[foreign.id] == "Running"
    assert {states[mine.id], states[expired.id], states[retry.id]} == {"Pending"}
    store.update(retry.id, {"state": "Retry", "retry_at": now + 5})
    assert store.promote_retries(now) == []
    assert store.promote_retries(now + 6) == [retry.id]


def test_history_and_outputs_trimming(store: JobStore) -> None:
    jobs = [record() for _ in range(4)]
    store.insert(jobs)
    for job in jobs:
        outputs = {"result": {"media_type": "text/plain", "filename": "f", "path": "/x"}}
        store.update(job.id, {"state": "Success", "outputs": outputs}, complete=True)
    dropped = store.drop_outputs(2)
    assert {r.id for r in dropped} == {jobs[0].id, jobs[1].id}
    assert (store.get(jobs[0].id) or record()).outputs == {}
    assert (store.get(jobs[3].id) or record()).outputs != {}
    assert [r.id for r in store.drop_history(1)] == [jobs[2].id, jobs[1].id, jobs[0].id]
    assert [r.id for r in store.all()] == [jobs[3].id]


def test_reorder_and_delete_all(store: JobStore) -> None:
    a, b = record(), record()
    store.insert([a, b])
    store.reorder([(b.id, 3, 1), (a.id, 0, 2)])
    now = time.time()
    claimed = store.claim("n/1", ["Noop"], now, now + 1)
    assert claimed is not None and claimed.id == b.id and claimed.priority == 3
    assert len(store.delete_all()) == 2 and store.all() == []


class CountingJob(NoopJob):
    """Records every step it runs (job id, position, engine) in a shared list."""

    type_name = "Counting"

    def __init__(self, steps: int, log: list[tuple[str, int, str]], engine_name: str) -> None:
        super().__init__(steps, 0.005)
        self.log = log
        self.engine_name = engine_name
        self.tag = ""

    def step(self, context: JobContext) -> StepResult:
        self.log.append((self.tag, self.position, self.engine_name))
        return super().step(context)

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "Tag": self.tag}


def test_two_engines_share_one_postgres_queue(pg_url: str, tmp_path: Path) -> None:
    lock = threading.Lock()

    class Log(list[tuple[str, int, str]]):
        def append(self, item: tuple[str, int, str]) -> None:
            with lock:
                super().append(item)

    shared = Log()

    def make(name: str) -> JobEngine:
        engine = JobEngine(
            PostgresJobStore(pg_url),
            concurrent_jobs=2,
            history_size=100,
            output_root=tmp_path / "outputs",
            node=name,
            poll_interval=0.02,
        )

        def rebuild(snapshot: dict[str, Any]) -> CountingJob:
            job = CountingJob(int(snapshot["Steps"]), shared, name)
            job.position = int(snapshot["Position"])
            job.tag = str(snapshot["Tag"])
            return job

        engine.register_kind("Counting", rebuild)
        return engine

    # A third engine that never runs submits every job, so each one is rebuilt from the store by
    # the engine that claims it: the log then names who ran every step, whatever the timing.
    submitter, first, second = make("submitter"), make("alpha"), make("beta")
    ids = []
    for number in range(30):
        job = CountingJob(5, shared, "submitter")
        job.tag = f"job-{number}"
        ids.append(submitter.submit(job))
    first.start()
    second.start()
    try:
        for job_id in ids:
            info = first.wait(job_id, 60)
            assert info is not None and info.state is JobState.SUCCESS
    finally:
        first.close()
        second.close()
        submitter.close()
    executed = list(shared)
    steps = Counter((tag, position) for tag, position, _ in executed)
    assert len(steps) == 30 * 5
    assert set(steps.values()) == {1}, "a step ran twice"
    engines = {name for _, _, name in executed}
    assert "submitter" not in engines
    assert engines == {"alpha", "beta"}, "both engines took jobs"
