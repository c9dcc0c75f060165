"""The worker threads of the engine: claim a job, run its steps, let it go or finish it.

Part of :class:`~obelisk.jobs.engine.JobEngine` (a mixin); ``JobEngine.start`` spawns
:meth:`JobWorkers._work` (one thread per concurrent job) and :meth:`JobWorkers._maintain`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from obelisk.errors import ErrorCode, ObeliskError
from obelisk.jobs.events import EngineEvents
from obelisk.jobs.model import Job, StepOutcome, StepResult, StopReason
from obelisk.jobs.records import (
    FAILURE,
    PAUSED,
    PENDING,
    RETRY,
    RUNNING,
    SUCCESS,
    as_error,
    clamp_progress,
    outputs_of,
    progress_percent,
)
from obelisk.jobs.store import CANCEL, PAUSE, JobRecord

log = logging.getLogger("obelisk.jobs")


class _Context:
    """The :class:`~obelisk.jobs.model.JobContext` of one job."""

    def __init__(self, job_id: str, output_dir: Path) -> None:
        self.job_id = job_id
        self.output_dir = output_dir

    def log(self, message: str) -> None:
        log.info("Job %s: %s", self.job_id, message)


class JobWorkers(EngineEvents):
    """The worker loop and the maintenance thread (retries, leases, output folders)."""

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                record = self._claim()
            except Exception:
                log.exception("Cannot claim a job")
                record = None
            if record is None:
                with self._wakeup:
                    if not self._stopping.is_set():
                        self._wakeup.wait(self.poll_interval)
                continue
            try:
                self._run(record)
            except Exception:
                log.exception("Job %s: the worker failed", record.id)
            finally:
                with self._lock:
                    self._running.discard(record.id)

    def _claim(self) -> JobRecord | None:
        with self._claiming:  # the flag cannot change between its check and the claim
            with self._lock:
                if not self._dispatching or self._stopping.is_set():
                    return None
                kinds = list(self._kinds)
            now = time.time()
            record = self.store.claim(self.owner, kinds, now, now + self.lease_seconds)
        if record is not None:
            with self._lock:
                self._running.add(record.id)
                if not self._dispatching:  # stopped while claiming: give it back
                    self._running.discard(record.id)
                    self.store.update(
                        record.id,
                        {"state": PENDING, "lease_owner": None, "lease_expiry": None},
                        owner=self.owner,
                    )
                    return None
        return record

    def _run(self, record: JobRecord) -> None:
        with self._lock:
            job = self._live.pop(record.id, None)
        if job is None:
            try:
                job = self._kinds[record.type_name].factory(record.snapshot)
            except Exception as exc:
                log.exception("Job %s (%s) cannot be rebuilt", record.id, record.type_name)
                self._finish(record, None, FAILURE, as_error(exc), record.runtime)
                return
            # Rebuilt from its last snapshot (after a restart, a pause or on another server).
            log.info(
                "Job %s (%s) resumes at %d %%",
                record.id,
                record.type_name,
                progress_percent(record.progress),
            )
        self._emit("state", record, RUNNING)
        output_dir = self.output_root / record.id
        output_dir.mkdir(parents=True, exist_ok=True)
        context = _Context(record.id, output_dir)
        runtime = record.runtime
        percent = progress_percent(record.progress)
        while True:
            if self._stopping.is_set():
                self._release(record, job, runtime)
                return
            started = time.monotonic()
            try:
                result = job.step(context)
            except Exception as exc:
                if not isinstance(exc, ObeliskError):
                    log.exception("Job %s (%s): step failed", record.id, record.type_name)
                result = StepResult(StepOutcome.FAILURE, as_error(exc))
            runtime += time.monotonic() - started
            if result.outcome is StepOutcome.CONTINUE:
                try:
                    progress = clamp_progress(job.progress())
                    changes: dict[str, Any] = {
                        "snapshot": job.serialize(),
                        "content": job.content(),
                        "progress": progress,
                        "runtime": runtime,
                        "lease_expiry": time.time() + self.lease_seconds,
                    }
                except Exception as exc:
                    self._finish(record, job, FAILURE, as_error(exc), runtime)
                    return
                owned, request = self.store.save_step(record.id, self.owner, changes)
                if not owned:
                    log.warning("Job %s was taken from this worker (lease lost)", record.id)
                    return
                if progress_percent(progress) != percent:
                    percent = progress_percent(progress)
                    self._emit("progress", record, RUNNING, progress=progress)
                if request == PAUSE:
                    self._stop_job(job, StopReason.PAUSED)
                    self._leave(record, job, PAUSED, {}, runtime)
                    return
                if request == CANCEL:
                    self._stop_job(job, StopReason.CANCELED)
                    canceled = ObeliskError(code=ErrorCode.CanceledJob)
                    self._finish(record, job, FAILURE, canceled, runtime, stopped=True)
                    return
                continue
            if result.outcome is StepOutcome.SUCCESS:
                self._finish(record, job, SUCCESS, None, runtime)
            elif result.outcome is StepOutcome.RETRY:
                self._stop_job(job, StopReason.RETRY)
                retry_at = time.time() + max(0.0, result.retry_after)
                self._leave(record, job, RETRY, {"retry_at": retry_at}, runtime)
            else:
                error = result.error or ObeliskError(code=ErrorCode.InternalError)
                self._finish(record, job, FAILURE, error, runtime)
            return

    def _snapshot(self, job: Job | None) -> dict[str, Any]:
        if job is None:
            return {}
        try:
            return {
                "snapshot": job.serialize(),
                "content": job.content(),
                "progress": clamp_progress(job.progress()),
            }
        except Exception:
            log.exception("Job %s cannot be serialized", job.type_name)
            return {}

    def _leave(
        self,
        record: JobRecord,
        job: Job,
        state: str,
        extra: dict[str, Any],
        runtime: float,
    ) -> None:
        """Running → Paused / Retry / Pending (this worker lets go of the job)."""
        changes = {
            **self._snapshot(job),
            **extra,
            "state": state,
            "runtime": runtime,
            "last_change_time": time.time(),
            "lease_owner": None,
            "lease_expiry": None,
            "request": None,
        }
        if self.store.update(record.id, changes, states=[RUNNING], owner=self.owner):
            self._emit("state", record, state, progress=changes.get("progress"))

    def _release(self, record: JobRecord, job: Job, runtime: float) -> None:
        """Shutdown: the job goes back to Pending with its last snapshot."""
        self._stop_job(job, StopReason.PAUSED)
        self._leave(record, job, PENDING, {}, runtime)

    def _finish(
        self,
        record: JobRecord,
        job: Job | None,
        state: str,
        error: ObeliskError | None,
        runtime: float,
        *,
        stopped: bool = False,
    ) -> None:
        """Running → Success / Failure."""
        if job is not None and not stopped:
            reason = StopReason.SUCCESS if state == SUCCESS else StopReason.FAILURE
            self._stop_job(job, reason)
        now = time.time()
        changes: dict[str, Any] = {
            **self._snapshot(job),
            "state": state,
            "runtime": runtime,
            "last_change_time": now,
            "completion_time": now,
            "error_code": error.code.number if error else 0,
            "error_details": (error.details or "") if error else "",
            "lease_owner": None,
            "lease_expiry": None,
            "request": None,
        }
        if state == SUCCESS:
            changes["progress"] = 1.0
            changes["outputs"] = outputs_of(job)
        if not self.store.update(
            record.id, changes, states=[RUNNING], owner=self.owner, complete=True
        ):
            log.warning("Job %s completed here but another worker holds it now", record.id)
            return
        if error is not None and error.code is not ErrorCode.CanceledJob:
            log.warning("Job %s (%s) failed: %s", record.id, record.type_name, error)
        self._emit("state", record, state, changes["error_code"], changes.get("progress"))
        self._completed(record.id)

    @staticmethod
    def _stop_job(job: Job, reason: StopReason) -> None:
        try:
            job.stop(reason)
        except Exception:
            log.exception("Job %s: stop(%s) failed", job.type_name, reason.value)

    def _maintain(self) -> None:
        last_renewal = time.monotonic()
        while not self._stopping.wait(self.poll_interval):
            try:
                with self._claiming:  # no worker takes a job before its Pending event
                    promoted = self.store.promote_retries(time.time())
                    for job_id in promoted:
                        found = self.store.get(job_id)
                        if found is not None:
                            self._emit("state", found, PENDING)
                if promoted:
                    with self._wakeup:
                        self._wakeup.notify_all()
                if time.monotonic() - last_renewal > self.lease_seconds / 3:
                    last_renewal = time.monotonic()
                    with self._lock:
                        running = list(self._running)
                    self.store.renew(self.owner, running, time.time() + self.lease_seconds)
                self._delete_doomed()
            except Exception:
                log.exception("Jobs maintenance failed")
