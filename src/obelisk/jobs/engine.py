"""The jobs engine: Orthanc's registry and workers over a :class:`~obelisk.jobs.store.JobStore`.

States and transitions follow Orthanc 1.10.1 (``docs/jobs.md``)::

    submit ─► Pending ─(claimed)─► Running ─step()=SUCCESS──► Success
                ▲                   │ ├──step()=FAILURE / raises──► Failure
                │                   │ └──step()=RETRY(t)──► Retry ─(t elapsed)─► Pending
                └──── resume ◄── Paused ◄── pause (between two steps when Running)

``cancel`` ends in Failure with ErrorCode 37; ``resubmit`` takes a completed job back to
Pending after ``Job.reset()``. Completed jobs form the history (``JobsHistorySize``, FIFO).

Every change goes through the store first, so the store is the truth: workers *claim* jobs there
(with a lease renewed while they run), save each job's snapshot after every step, and read back
pause/cancel requests at the same time. At start, the jobs this node left Running (a crash) and
every Retry job go back to Pending, to be rebuilt by their kind's factory from the last snapshot.

The engine knows nothing of HTTP; notifications (:class:`JobEvent`) go to subscribers, called on
the engine's threads.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from obelisk.errors import BadRequest, ErrorCode, ObeliskError
from obelisk.jobs.engine_state import RegisteredKind
from obelisk.jobs.events import DoneCallback, EventSubscriber, JobEvent
from obelisk.jobs.info import JobInfo, JobState
from obelisk.jobs.model import Job, JobFactory, JobOutput, JobValidator
from obelisk.jobs.queue import Dispatch, QueueControl, QueueStatus
from obelisk.jobs.records import (
    FAILURE,
    PAUSED,
    PENDING,
    RETRY,
    RUNNING,
    clamp_progress,
    info_of,
    not_rebuildable,
)
from obelisk.jobs.store import CANCEL, PAUSE, JobRecord, JobStore
from obelisk.jobs.worker import JobWorkers
from obelisk.logbuffer import LogBuffer

# The engine's public names, some defined in the modules it is split into: callers import
# them all from here.
__all__ = [
    "BatchRejected",
    "Dispatch",
    "DoneCallback",
    "EventSubscriber",
    "JobEngine",
    "JobEvent",
    "QueueStatus",
    "default_node",
]

log = logging.getLogger("obelisk.jobs")


class BatchRejected(BadRequest):
    """A batch with at least one invalid item; ``results`` has ``None`` for the valid ones."""

    def __init__(self, results: list[str | None]) -> None:
        bad = sum(1 for r in results if r is not None)
        super().__init__(f"The batch was rejected: {bad} of {len(results)} items are invalid")
        self.results = results


def default_node() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JobEngine(JobWorkers, QueueControl):
    """Orthanc's jobs registry and engine, persisted in a :class:`JobStore`.

    One object over several modules: the events and waiters (:mod:`obelisk.jobs.events`), the
    worker threads (:mod:`obelisk.jobs.worker`) and the queue control
    (:mod:`obelisk.jobs.queue`) are mixins sharing the state set up here.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        concurrent_jobs: int = 2,
        history_size: int = 10,
        media_archive_size: int = 1,
        output_root: Path | None = None,
        node: str | None = None,
        lease_seconds: float = 30.0,
        poll_interval: float = 0.2,
        output_grace: float = 30.0,
        log_buffer: LogBuffer | None = None,
    ) -> None:
        self.store = store
        self.concurrent_jobs = concurrent_jobs if concurrent_jobs > 0 else (os.cpu_count() or 1)
        self.history_size = max(0, history_size)
        self.media_archive_size = max(0, media_archive_size)
        self._temporary_root = output_root is None
        self.output_root = output_root or Path(tempfile.mkdtemp(prefix="obelisk-jobs-"))
        #: Stable name of this server in the store: a restarted server reclaims its own jobs.
        self.node = node or default_node()
        #: Owner of the leases taken by this process (one per start).
        self.owner = f"{self.node}/{uuid.uuid4()}"
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.output_grace = output_grace
        self.log_buffer = log_buffer or LogBuffer()

        self._kinds: dict[str, RegisteredKind] = {}
        self._live: dict[str, Job] = {}  # jobs submitted here and not yet claimed
        self._running: set[str] = set()
        self._waiters: dict[str, list[DoneCallback]] = {}
        self._subscribers: list[EventSubscriber] = []
        self._doomed: list[tuple[float, Path]] = []  # output folders to delete, with deadline
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._claiming = threading.RLock()  # orders Pending events before claims
        self._dispatching = True
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- kinds ---------------------------------------------------------------------------------

    def register_kind(
        self, type_name: str, factory: JobFactory, validate: JobValidator | None = None
    ) -> None:
        """``factory`` rebuilds a job from its snapshot; ``validate`` builds one from a request
        (``POST /queue/batch`` items) and raises ``BadRequest`` when the request is wrong."""
        self._kinds[type_name] = RegisteredKind(factory, validate)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._kinds)

    def validate(self, request: dict[str, Any]) -> Job:
        """A job built from a REST-style request ``{"Type": kind, …}``."""
        type_name = request.get("Type")
        if not isinstance(type_name, str):
            raise BadRequest('Field "Type" (the job type) is missing or not a string')
        kind = self._kinds.get(type_name)
        if kind is None or kind.validate is None:
            raise BadRequest(f"Unknown job type or not submittable: {type_name}")
        return kind.validate(request)

    # --- life cycle ----------------------------------------------------------------------------

    def start(self, *, load_saved: bool = True) -> None:
        """Recovers saved jobs (or forgets them if ``load_saved`` is false) and starts workers."""
        if self._threads:
            return
        self._stopping.clear()
        if load_saved:
            recovered = self.store.recover(self.node, time.time())
            if recovered:
                log.info("%d saved job(s) are back in the queue", recovered)
            unknown = {
                r.type_name
                for r in self.store.all()
                if not JobState(r.state).completed and r.type_name not in self._kinds
            }
            if unknown:
                log.warning("Saved jobs of unknown types are left aside: %s", sorted(unknown))
            self._trim()
        else:
            dropped = self.store.delete_all()
            for record in dropped:
                self._doom(record.id, grace=0.0)
            if dropped:
                log.warning("Started without saved jobs: %d saved job(s) forgotten", len(dropped))
        self.log_buffer.install()
        for number in range(self.concurrent_jobs):
            self._spawn(self._work, f"obelisk-job-worker-{number}")
        self._spawn(self._maintain, "obelisk-job-maintenance")

    def stop(self) -> None:
        """Workers finish their current step, save it and leave their job Pending for later."""
        self._stopping.set()
        with self._wakeup:
            self._wakeup.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        self._delete_doomed(force=True)
        self.log_buffer.uninstall()

    def close(self) -> None:
        self.stop()
        self.store.close()
        if self._temporary_root:
            shutil.rmtree(self.output_root, ignore_errors=True)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # --- submission ----------------------------------------------------------------------------

    def submit(self, job: Job, priority: int = 0) -> str:
        return self.submit_many([(job, priority)])[0]

    def submit_many(self, jobs: list[tuple[Job, int]]) -> list[str]:
        """Submits jobs all at once (one transaction), at the back of the queue, in order."""
        now = time.time()
        records = []
        for job, priority in jobs:
            if job.type_name not in self._kinds:
                log.warning(
                    "Job type %s has no factory: it cannot survive a restart", job.type_name
                )
                self.register_kind(job.type_name, not_rebuildable(job.type_name))
            records.append(
                JobRecord(
                    id=str(uuid.uuid4()),
                    type_name=job.type_name,
                    state=PENDING,
                    priority=int(priority),
                    creation_time=now,
                    last_change_time=now,
                    snapshot=job.serialize(),
                    content=job.content(),
                    progress=clamp_progress(job.progress()),
                )
            )
        with self._lock:
            for record, (job, _) in zip(records, jobs, strict=True):
                self._live[record.id] = job
        with self._claiming:
            try:
                self.store.insert(records)
            except BaseException:
                with self._lock:
                    for record in records:
                        self._live.pop(record.id, None)
                raise
            for record in records:
                self._emit("submitted", record)
        with self._wakeup:
            self._wakeup.notify_all()
        return [record.id for record in records]

    def submit_requests(self, requests: list[dict[str, Any]]) -> list[str]:
        """All-or-nothing: every request is validated first; one bad item rejects the batch."""
        results: list[str | None] = []
        jobs: list[tuple[Job, int]] = []
        for request in requests:
            try:
                if not isinstance(request, dict):
                    raise BadRequest("An item of the batch is not a JSON object")
                priority = request.get("Priority", 0)
                if not isinstance(priority, int) or isinstance(priority, bool):
                    raise BadRequest('Field "Priority" must be an integer')
                jobs.append((self.validate(request), priority))
                results.append(None)
            except ObeliskError as exc:
                results.append(str(exc))
        if any(result is not None for result in results):
            raise BatchRejected(results)
        return self.submit_many(jobs)

    # --- reading -------------------------------------------------------------------------------

    def info(self, job_id: str) -> JobInfo | None:
        record = self.store.get(job_id)
        return info_of(record, time.time()) if record else None

    def infos(self) -> list[JobInfo]:
        """Every job the store knows, sorted by id (as ``GET /jobs``)."""
        now = time.time()
        return [info_of(r, now) for r in sorted(self.store.all(), key=lambda r: r.id)]

    def history(self) -> list[JobInfo]:
        """Completed jobs, oldest completion first."""
        now = time.time()
        done = [r for r in self.store.all() if JobState(r.state).completed]
        return [info_of(r, now) for r in sorted(done, key=lambda r: r.completion_seq or 0)]

    def clear_history(self) -> int:
        dropped = self.store.drop_history(0)
        for record in dropped:
            self._doom(record.id)
        return len(dropped)

    def queue(self) -> list[JobInfo]:
        """Pending jobs in the order they will run."""
        now = time.time()
        return [info_of(r, now) for r in self._pending()]

    def output(self, job_id: str, key: str) -> JobOutput | None:
        found = self.info(job_id)
        return found.outputs.get(key) if found else None

    def status(self) -> QueueStatus:
        counts = dict.fromkeys(JobState, 0)
        for record in self.store.all():
            counts[JobState(record.state)] += 1
        with self._lock:
            running_here = len(self._running)
        return QueueStatus(self.dispatch, counts, running_here, self.concurrent_jobs, self.node)

    # --- Orthanc's actions (False = refused, HTTP 400) -----------------------------------------

    def pause(self, job_id: str) -> bool:
        for _ in range(10):
            record = self.store.get(job_id)
            if record is None:
                return False
            if record.state in (PENDING, RETRY):
                if self._move_to(record, PAUSED, {"retry_at": None}):
                    return True
            elif record.state == RUNNING:
                if record.request == CANCEL:
                    return True
                if self.store.update(job_id, {"request": PAUSE}, states=[RUNNING]):
                    return True
            else:
                return True  # Paused, Success, Failure: nothing to do
        return False

    def cancel(self, job_id: str) -> bool:
        for _ in range(10):
            record = self.store.get(job_id)
            if record is None:
                return False
            if record.state in (PENDING, RETRY, PAUSED):
                now = time.time()
                changes = {
                    "state": FAILURE,
                    "last_change_time": now,
                    "completion_time": now,
                    "error_code": ErrorCode.CanceledJob.number,
                    "error_details": "",
                    "retry_at": None,
                }
                if self.store.update(job_id, changes, states=[record.state], complete=True):
                    with self._lock:
                        self._live.pop(job_id, None)
                    self._emit("state", record, FAILURE, ErrorCode.CanceledJob.number)
                    self._completed(job_id)
                    return True
            elif record.state == RUNNING:
                if self.store.update(job_id, {"request": CANCEL}, states=[RUNNING]):
                    return True
            else:
                return True  # Success, Failure: nothing to do
        return False

    def resume(self, job_id: str) -> bool:
        record = self.store.get(job_id)
        if record is None or record.state != PAUSED:
            return False
        return self._move_to(record, PENDING, {})

    def resubmit(self, job_id: str) -> bool:
        record = self.store.get(job_id)
        if record is None or not JobState(record.state).completed:
            return False
        try:
            job = self._kinds[record.type_name].factory(record.snapshot)
            job.reset()
            changes: dict[str, Any] = {
                "snapshot": job.serialize(),
                "content": job.content(),
                "progress": clamp_progress(job.progress()),
            }
        except Exception:
            log.exception("Job %s cannot be rebuilt for resubmission", job_id)
            return False
        changes.update(
            runtime=0.0, error_code=0, error_details="", completion_time=None, outputs={}
        )
        shutil.rmtree(self.output_root / job_id, ignore_errors=True)
        with self._lock:
            self._live[job_id] = job
        if not self._move_to(record, PENDING, changes, requeue=True):
            with self._lock:
                self._live.pop(job_id, None)
            return False
        return True

    def _move_to(
        self, record: JobRecord, state: str, changes: dict[str, Any], *, requeue: bool = False
    ) -> bool:
        changes = {**changes, "state": state, "last_change_time": time.time()}
        with self._claiming:
            if not self.store.update(record.id, changes, states=[record.state], requeue=requeue):
                return False
            self._emit("state", record, state)
        if state == PENDING:
            with self._wakeup:
                self._wakeup.notify_all()
        return True
