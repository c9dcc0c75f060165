"""Engines over real stores (memory, SQLite file) with the built-in Noop kind; no mocks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from obelisk.jobs.engine import JobEngine, JobEvent
from obelisk.jobs.info import JobInfo, JobState
from obelisk.jobs.kinds import noop
from obelisk.jobs.sqlstore import SqliteJobStore
from obelisk.jobs.store import JobStore, MemoryJobStore

EngineFactory = Callable[..., JobEngine]


@pytest.fixture(params=["memory", "sqlite"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_engine(tmp_path: Path, store_kind: str) -> Iterator[EngineFactory]:
    engines: list[JobEngine] = []

    def factory(*, start: bool = True, store: JobStore | None = None, **options: Any) -> JobEngine:
        if store is None:
            store = (
                MemoryJobStore()
                if store_kind == "memory"
                else SqliteJobStore(tmp_path / "index.db")
            )
        options.setdefault("output_root", tmp_path / "outputs")
        options.setdefault("node", "test-node")
        options.setdefault("output_grace", 0.0)
        options.setdefault("poll_interval", 0.05)
        engine = JobEngine(store, **options)
        engine.register_kind(noop.TYPE_NAME, noop.rebuild, noop.validate)
        if start:
            engine.start()
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        engine.close()


def wait_for(
    predicate: Callable[[], bool], timeout: float = 10.0, message: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {message}")


def state_of(engine: JobEngine, job_id: str) -> JobState:
    info = engine.info(job_id)
    assert info is not None
    return info.state


def wait_state(engine: JobEngine, job_id: str, state: JobState, timeout: float = 10.0) -> JobInfo:
    wait_for(lambda: state_of(engine, job_id) is state, timeout, f"{job_id} to be {state.value}")
    info = engine.info(job_id)
    assert info is not None
    return info


class EventLog:
    """Collects the events of an engine (subscribed for the whole test)."""

    def __init__(self, engine: JobEngine) -> None:
        self.events: list[JobEvent] = []
        self._lock = threading.Lock()
        engine.subscribe(self._on_event)

    def _on_event(self, event: JobEvent) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: str | None = None, state: str | None = None) -> list[JobEvent]:
        with self._lock:
            return [
                e
                for e in self.events
                if (kind is None or e.kind == kind) and (state is None or e.state == state)
            ]
