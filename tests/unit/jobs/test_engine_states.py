"""Every state transition of Orthanc's table (reference/jobs-engine.md §2), on every store."""

from __future__ import annotations

from typing import Any

from obelisk.errors import ErrorCode
from obelisk.jobs.engine import JobEngine
from obelisk.jobs.info import JobState
from obelisk.jobs.kinds.noop import NoopJob
from obelisk.jobs.model import JobContext, JobOutput, StepResult, StopReason
from tests.unit.jobs.conftest import EngineFactory, EventLog, state_of, wait_for, wait_state

LONG = {"Type": "Noop", "Steps": 10_000, "StepDuration": 0.01}


def submit(engine: JobEngine, **request: Any) -> str:
    return engine.submit_requests([{"Type": "Noop", **request}])[0]


def running(engine: JobEngine) -> str:
    job_id = submit(engine, **{k: v for k, v in LONG.items() if k != "Type"})
    wait_for(lambda: state_of(engine, job_id) is JobState.RUNNING, message="running")
    return job_id


class BoomJob(NoopJob):
    type_name = "Boom"

    def step(self, context: JobContext) -> StepResult:
        raise ValueError("boom")


def test_success_sets_progress_times_and_code(make_engine: EngineFactory) -> None:
    engine = make_engine()
    job_id = submit(engine, Steps=3, StepDuration=0.01)
    info = engine.wait(job_id, 10)
    assert info is not None
    assert info.state is JobState.SUCCESS
    assert info.progress_percent == 100
    assert info.error_code is ErrorCode.Success
    assert info.completion_time is not None and len(info.completion_time) == 22
    assert info.creation_time <= info.completion_time
    assert info.runtime > 0.02
    assert info.content["Position"] == 3


def test_step_result_failure_keeps_code_and_details(make_engine: EngineFactory) -> None:
    engine = make_engine()
    job_id = submit(engine, Steps=5, FailAt=2, FailCode=ErrorCode.BadFileFormat.number)
    info = engine.wait(job_id, 10)
    assert info is not None and info.state is JobState.FAILURE
    assert info.error_code is ErrorCode.BadFileFormat
    assert info.error_details == "Noop failed at step 2"
    assert info.progress_percent == 40


def test_unexpected_exception_is_internal_error(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.register_kind("Boom", lambda snapshot: BoomJob())
    info = engine.wait(engine.submit(BoomJob()), 10)
    assert info is not None and info.state is JobState.FAILURE
    assert info.error_code is ErrorCode.InternalError
    assert "ValueError: boom" in info.error_details


def test_retry_goes_back_to_pending_then_succeeds(make_engine: EngineFactory) -> None:
    engine = make_engine()
    events = EventLog(engine)
    job_id = submit(engine, Steps=3, RetryAt=1, RetryDelay=0.3)
    wait_state(engine, job_id, JobState.RETRY)
    info = engine.wait(job_id, 10)
    assert info is not None and info.state is JobState.SUCCESS
    states = [e.state for e in events.of("state")]
    assert states == ["Running", "Retry", "Pending", "Running", "Success"]


def test_pause_and_resume_a_pending_job(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.stop_dispatch()
    job_id = submit(engine, Steps=2)
    assert engine.pause(job_id)
    assert state_of(engine, job_id) is JobState.PAUSED
    assert engine.queue() == []
    assert engine.pause(job_id)  # no-op on Paused
    assert engine.resume(job_id)
    assert state_of(engine, job_id) is JobState.PENDING
    engine.start_dispatch()
    info = engine.wait(job_id, 10)
    assert info is not None and info.state is JobState.SUCCESS


def test_pause_of_a_running_job_takes_effect_between_steps(make_engine: EngineFactory) -> None:
    engine = make_engine()
    job = NoopJob(10_000, 0.01)
    job_id = engine.submit(job)
    wait_for(lambda: state_of(engine, job_id) is JobState.RUNNING)
    wait_for(lambda: job.position >= 3)
    assert engine.pause(job_id)
    info = wait_state(engine, job_id, JobState.PAUSED)
    assert job.stops == [StopReason.PAUSED.value]
    paused_at = info.content["Position"]
    assert paused_at >= 3
    assert engine.resume(job_id)
    wait_for(lambda: (engine.info(job_id) or info).content["Position"] > paused_at + 2)
    resumed = engine.info(job_id)
    assert resumed is not None
    # Rebuilt from its snapshot where it stopped, not from scratch
    assert resumed.content["Rebuilds"] == [paused_at]
    engine.cancel(job_id)


def test_retry_job_can_be_paused_and_canceled(make_engine: EngineFactory) -> None:
    engine = make_engine()
    first = submit(engine, Steps=3, RetryAt=1, RetryDelay=30)
    second = submit(engine, Steps=3, RetryAt=1, RetryDelay=30)
    wait_state(engine, first, JobState.RETRY)
    wait_state(engine, second, JobState.RETRY)
    assert engine.pause(first)
    assert state_of(engine, first) is JobState.PAUSED
    assert engine.cancel(second)
    info = engine.info(second)
    assert info is not None and info.state is JobState.FAILURE
    assert info.error_code is ErrorCode.CanceledJob


def test_cancel_from_pending_paused_and_running(make_engine: EngineFactory) -> None:
    engine = make_engine()
    busy = running(engine)
    engine.stop_dispatch()
    pending = submit(engine, Steps=1)
    paused = submit(engine, Steps=1)
    assert engine.pause(paused)
    for job_id in (pending, paused, busy):
        assert engine.cancel(job_id)
    job = wait_state(engine, busy, JobState.FAILURE)
    for job_id in (pending, paused, busy):
        info = engine.info(job_id)
        assert info is not None and info.state is JobState.FAILURE
        assert info.error_code is ErrorCode.CanceledJob
        assert info.error_code.description == "This job was canceled"
    assert job.completion_time is not None


def test_completed_jobs_ignore_pause_and_cancel(make_engine: EngineFactory) -> None:
    engine = make_engine()
    job_id = submit(engine, Steps=1)
    engine.wait(job_id, 10)
    assert engine.pause(job_id) and engine.cancel(job_id)
    assert state_of(engine, job_id) is JobState.SUCCESS


def test_resume_only_from_paused(make_engine: EngineFactory) -> None:
    engine = make_engine()
    done = submit(engine, Steps=1)
    engine.wait(done, 10)
    busy = running(engine)
    engine.stop_dispatch()
    pending = submit(engine, Steps=1)
    for job_id in (done, busy, pending, "no-such-job"):
        assert not engine.resume(job_id)
    engine.cancel(busy)


def test_resubmit_only_from_completed_and_resets(make_engine: EngineFactory) -> None:
    engine = make_engine()
    failed = submit(engine, Steps=3, FailAt=2)
    info = engine.wait(failed, 10)
    assert info is not None and info.state is JobState.FAILURE
    busy = running(engine)
    assert not engine.resubmit(busy)
    engine.stop_dispatch()
    pending = submit(engine, Steps=1)
    assert not engine.resubmit(pending)
    assert not engine.resubmit("no-such-job")
    assert engine.resubmit(failed)
    again = engine.info(failed)
    assert again is not None
    assert again.state is JobState.PENDING
    assert again.runtime == 0 and again.error_code is ErrorCode.Success
    assert again.content["Position"] == 0 and again.completion_time is None
    assert failed not in [h.id for h in engine.history()]
    engine.cancel(busy)
    engine.start_dispatch()
    assert (engine.wait(failed, 10) or info).state is JobState.FAILURE  # fails again at step 2
    assert engine.resubmit(failed)  # a canceled/failed job can be resubmitted repeatedly


def test_actions_on_unknown_jobs_are_refused(make_engine: EngineFactory) -> None:
    engine = make_engine()
    for action in (engine.pause, engine.cancel, engine.resume, engine.resubmit):
        assert not action("00000000-0000-0000-0000-000000000000")
    assert engine.info("00000000-0000-0000-0000-000000000000") is None


def test_estimated_time_of_arrival_only_while_running(make_engine: EngineFactory) -> None:
    engine = make_engine()
    job_id = submit(engine, Steps=50, StepDuration=0.02)
    wait_for(lambda: (engine.info(job_id) or _never()).progress > 0.1)
    info = engine.info(job_id)
    assert info is not None and info.state is JobState.RUNNING
    assert info.estimated_time_of_arrival is not None
    assert info.completion_time is None
    done = engine.wait(job_id, 10)
    assert done is not None and done.estimated_time_of_arrival is None


def _never() -> Any:
    raise AssertionError("job vanished")


class OutputJob(NoopJob):
    type_name = "WithOutput"

    def outputs(self) -> dict[str, JobOutput]:
        return super().outputs()


def test_outputs_kept_for_media_archive_size_jobs(make_engine: EngineFactory) -> None:
    engine = make_engine(media_archive_size=1)
    first = submit(engine, Output="first")
    first_info = engine.wait(first, 10)
    assert first_info is not None
    output = first_info.outputs["result"]
    assert output.path.read_text() == "first"
    assert (output.media_type, output.filename) == ("text/plain", "noop.txt")
    assert engine.output(first, "nothing") is None
    second = submit(engine, Output="second")
    engine.wait(second, 10)
    found = engine.output(second, "result")
    assert found is not None and found.path.read_text() == "second"
    assert engine.output(first, "result") is None  # only MediaArchiveSize outputs are kept
    assert not output.path.exists()
    assert state_of(engine, first) is JobState.SUCCESS  # the job itself stays in history


def test_history_size_drops_oldest_and_output_folders(make_engine: EngineFactory) -> None:
    engine = make_engine(history_size=2, media_archive_size=10)
    ids = []
    for text in ("a", "b", "c", "d"):
        ids.append(submit(engine, Output=text))
        engine.wait(ids[-1], 10)
    assert [h.id for h in engine.history()] == ids[2:]
    assert engine.info(ids[0]) is None and engine.info(ids[1]) is None
    assert not (engine.output_root / ids[0]).exists()
    assert (engine.output_root / ids[3]).exists()
    assert engine.clear_history() == 2
    assert engine.history() == []
    assert not (engine.output_root / ids[3]).exists()


def test_history_size_zero_answers_none_to_waiters(make_engine: EngineFactory) -> None:
    engine = make_engine(history_size=0)
    job_id = submit(engine, Steps=2, StepDuration=0.01)
    assert engine.wait(job_id, 10) is None
    assert engine.info(job_id) is None
