"""Scheduling and the queue beyond Orthanc: priorities, concurrency, moves, batches, dispatch,
events."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from obelisk.errors import BadRequest
from obelisk.jobs.engine import BatchRejected, Dispatch, JobEngine
from obelisk.jobs.info import JobState
from tests.unit.jobs.conftest import EngineFactory, EventLog, state_of, wait_for


def noop(**request: Any) -> dict[str, Any]:
    return {"Type": "Noop", **request}


def queue_ids(engine: JobEngine) -> list[str]:
    return [info.id for info in engine.queue()]


def test_highest_priority_first_and_ties_in_submission_order(make_engine: EngineFactory) -> None:
    engine = make_engine(concurrent_jobs=1)
    events = EventLog(engine)
    engine.stop_dispatch()
    priorities = [0, 5, -3, 5, 0, 10]
    ids = engine.submit_requests([noop(Priority=p) for p in priorities])
    expected = [ids[5], ids[1], ids[3], ids[0], ids[4], ids[2]]
    assert queue_ids(engine) == expected
    engine.start_dispatch()
    for job_id in ids:
        engine.wait(job_id, 10)
    assert [e.job_id for e in events.of("state", "Running")] == expected


def test_concurrency_limit(make_engine: EngineFactory) -> None:
    engine = make_engine(concurrent_jobs=2)
    lock = threading.Lock()
    now_running: set[str] = set()
    peak = [0]

    def watch(event: Any) -> None:
        with lock:
            if event.kind == "state" and event.state == "Running":
                now_running.add(event.job_id)
            elif event.kind == "state":
                now_running.discard(event.job_id)
            peak[0] = max(peak[0], len(now_running))

    engine.subscribe(watch)
    ids = engine.submit_requests([noop(Steps=5, StepDuration=0.02) for _ in range(6)])
    wait_for(lambda: engine.status().running_here == 2, message="two running")
    assert engine.status().counts[JobState.RUNNING] == 2
    for job_id in ids:
        engine.wait(job_id, 20)
    assert peak[0] == 2


def test_concurrent_jobs_zero_means_cpu_count(make_engine: EngineFactory) -> None:
    import os

    engine = make_engine(concurrent_jobs=0, start=False)
    assert engine.concurrent_jobs == (os.cpu_count() or 1)


@pytest.fixture
def stopped(make_engine: EngineFactory) -> tuple[JobEngine, list[str]]:
    engine = make_engine()
    engine.stop_dispatch()
    ids = engine.submit_requests([noop() for _ in range(5)])  # A B C D E
    return engine, ids


def test_move_front_back_before_after(stopped: tuple[JobEngine, list[str]]) -> None:
    engine, (a, b, c, d, e) = stopped
    assert engine.move(d, position="front") == (0, 0)
    assert queue_ids(engine) == [d, a, b, c, e]
    assert engine.move(d, position="back") == (4, 0)
    assert queue_ids(engine) == [a, b, c, e, d]
    assert engine.move(a, before=e)[0] == 2
    assert queue_ids(engine) == [b, c, a, e, d]
    assert engine.move(b, after=d)[0] == 4
    assert queue_ids(engine) == [c, a, e, d, b]


def test_move_to_an_index_with_bluesky_rules(stopped: tuple[JobEngine, list[str]]) -> None:
    engine, (a, b, c, d, e) = stopped
    engine.move(a, position=2)  # lands at index 2
    assert queue_ids(engine) == [b, c, a, d, e]
    engine.move(a, position=-2)  # second from the back
    assert queue_ids(engine) == [b, c, d, a, e]
    engine.move(a, position=-1)  # back
    assert queue_ids(engine) == [b, c, d, e, a]
    engine.move(a, position=-100)  # before the front → front
    assert queue_ids(engine) == [a, b, c, d, e]
    engine.move(a, position=100)  # past the back → back
    assert queue_ids(engine) == [b, c, d, e, a]


def test_moving_across_priorities_takes_the_neighbours_priority(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.stop_dispatch()
    high, low = engine.submit_requests([noop(Priority=10), noop(Priority=-5)])
    index, priority = engine.move(low, position="front")
    assert (index, priority) == (0, 10)
    assert queue_ids(engine) == [low, high]
    info = engine.info(low)
    assert info is not None and info.priority == 10
    later = engine.submit_requests([noop(Priority=10)])[0]
    assert queue_ids(engine) == [low, high, later]  # new jobs still go to the back
    _, priority = engine.move(high, after=later)
    assert priority == 10 and queue_ids(engine) == [low, later, high]


def test_move_errors(stopped: tuple[JobEngine, list[str]]) -> None:
    engine, (a, b, *_) = stopped
    with pytest.raises(BadRequest):
        engine.move(a)
    with pytest.raises(BadRequest):
        engine.move(a, position=1, before=b)
    with pytest.raises(BadRequest):
        engine.move(a, before=a)
    with pytest.raises(BadRequest):
        engine.move("unknown", position="front")
    with pytest.raises(BadRequest):
        engine.move(a, position="middle")
    engine.pause(b)
    with pytest.raises(BadRequest):
        engine.move(b, position="front")  # only pending jobs move
    with pytest.raises(BadRequest):
        engine.move(a, after=b)


def test_batch_is_all_or_nothing(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.stop_dispatch()
    with pytest.raises(BatchRejected) as caught:
        engine.submit_requests(
            [noop(), {"Type": "Nope"}, noop(Steps="many"), noop(Priority=1.5), "junk", noop()]
        )
    assert caught.value.results[0] is None and caught.value.results[5] is None
    assert "Unknown job type" in (caught.value.results[1] or "")
    assert "Steps" in (caught.value.results[2] or "")
    assert "Priority" in (caught.value.results[3] or "")
    assert caught.value.results[4] is not None
    assert engine.queue() == [] and engine.infos() == []
    ids = engine.submit_requests([noop(Priority=1), noop(Steps=2)])
    assert queue_ids(engine) == ids
    assert engine.submit_requests([]) == []


def test_stop_lets_running_jobs_finish_and_start_resumes(make_engine: EngineFactory) -> None:
    engine = make_engine(concurrent_jobs=1)
    busy = engine.submit_requests([noop(Steps=20, StepDuration=0.02)])[0]
    wait_for(lambda: state_of(engine, busy) is JobState.RUNNING)
    assert engine.stop_dispatch() is Dispatch.STOPPING
    waiting = engine.submit_requests([noop()])[0]
    info = engine.wait(busy, 10)
    assert info is not None and info.state is JobState.SUCCESS
    wait_for(lambda: engine.dispatch is Dispatch.STOPPED)
    assert state_of(engine, waiting) is JobState.PENDING
    assert engine.cancel_stop() is Dispatch.STOPPED  # too late: the stop is complete
    assert engine.start_dispatch() is Dispatch.RUNNING
    assert (engine.wait(waiting, 10) or info).state is JobState.SUCCESS


def test_a_stop_can_be_cancelled_while_jobs_still_run(make_engine: EngineFactory) -> None:
    engine = make_engine(concurrent_jobs=1)
    busy = engine.submit_requests([noop(Steps=30, StepDuration=0.02)])[0]
    wait_for(lambda: state_of(engine, busy) is JobState.RUNNING)
    engine.stop_dispatch()
    waiting = engine.submit_requests([noop()])[0]
    assert engine.cancel_stop() is Dispatch.RUNNING
    info = engine.wait(waiting, 10)
    assert info is not None and info.state is JobState.SUCCESS


def test_events_for_submission_states_and_progress(make_engine: EngineFactory) -> None:
    engine = make_engine()
    events = EventLog(engine)
    job_id = engine.submit_requests([noop(Steps=4, StepDuration=0.01)])[0]
    engine.wait(job_id, 10)
    mine = [e for e in events.events if e.job_id == job_id]
    assert mine[0].kind == "submitted" and mine[0].state == "Pending"
    assert [e.state for e in mine if e.kind == "state"] == ["Running", "Success"]
    assert [e.progress for e in mine if e.kind == "progress"] == [25, 50, 75]
    assert mine[-1].progress == 100 and mine[-1].type_name == "Noop"


def test_unsubscribe_stops_events(make_engine: EngineFactory) -> None:
    engine = make_engine()
    seen: list[Any] = []
    unsubscribe = engine.subscribe(seen.append)
    unsubscribe()
    engine.wait(engine.submit_requests([noop()])[0], 10)
    assert seen == []


def test_done_callback_is_called_once(make_engine: EngineFactory) -> None:
    engine = make_engine()
    calls: list[Any] = []
    job_id = engine.submit_requests([noop(Steps=3, StepDuration=0.01)])[0]
    engine.add_done_callback(job_id, calls.append)
    engine.wait(job_id, 10)
    wait_for(lambda: len(calls) == 1)
    engine.add_done_callback(job_id, calls.append)  # already complete: at once
    assert len(calls) == 2 and calls[1].state is JobState.SUCCESS


def test_log_buffer_keeps_and_streams_lines(make_engine: EngineFactory) -> None:
    import logging

    engine = make_engine()
    seen: list[str] = []
    engine.log_buffer.subscribe(lambda line: seen.append(line.text))
    logging.getLogger("obelisk.jobs").warning("hello from the test")
    assert any("hello from the test" in text for text in seen)
    assert "hello from the test" in engine.log_buffer.tail(5)[-1].text
