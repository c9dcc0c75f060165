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

import enum
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obelisk.errors import BadRequest, ErrorCode, ObeliskError
from obelisk.jobs.info import JobInfo, JobState, error_code_of, format_time
from obelisk.jobs.model import (
    Job,
    JobFactory,
    JobOutput,
    JobValidator,
    StepOutcome,
    StepResult,
    StopReason,
)
from obelisk.jobs.store import CANCEL, PAUSE, JobRecord, JobStore
from obelisk.logbuffer import LogBuffer

log = logging.getLogger("obelisk.jobs")

_PENDING, _RUNNING, _PAUSED, _RETRY = "Pending", "Running", "Paused", "Retry"
_SUCCESS, _FAILURE = "Success", "Failure"


@dataclass(frozen=True)
class JobEvent:
    """Something happened to a job: ``submitted``, ``state`` (a new state) or ``progress``."""

    kind: str
    job_id: str
    type_name: str
    state: str
    progress: int
    time: float
    error_code: int = 0


EventSubscriber = Callable[[JobEvent], None]
DoneCallback = Callable[[JobInfo | None], None]


class Dispatch(enum.Enum):
    """Whether workers take new jobs (Bluesky's queue start/stop)."""

    RUNNING = "running"
    STOPPING = "stopping"  # stopped, but jobs taken before the stop still run
    STOPPED = "stopped"


@dataclass(frozen=True)
class QueueStatus:
    dispatch: Dispatch
    counts: dict[JobState, int]
    running_here: int
    concurrent_jobs: int
    node: str


class BatchRejected(BadRequest):
    """A batch with at least one invalid item; ``results`` has ``None`` for the valid ones."""

    def __init__(self, results: list[str | None]) -> None:
        bad = sum(1 for r in results if r is not None)
        super().__init__(f"The batch was rejected: {bad} of {len(results)} items are invalid")
        self.results = results


@dataclass
class _Kind:
    factory: JobFactory
    validate: JobValidator | None


class _Context:
    """The :class:`~obelisk.jobs.model.JobContext` of one job."""

    def __init__(self, job_id: str, output_dir: Path) -> None:
        self.job_id = job_id
        self.output_dir = output_dir

    def log(self, message: str) -> None:
        log.info("Job %s: %s", self.job_id, message)


def default_node() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JobEngine:
    """Orthanc's jobs registry and engine, persisted in a :class:`JobStore`."""

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

        self._kinds: dict[str, _Kind] = {}
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
        self._kinds[type_name] = _Kind(factory, validate)

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
                self.register_kind(job.type_name, _not_rebuildable(job.type_name))
            records.append(
                JobRecord(
                    id=str(uuid.uuid4()),
                    type_name=job.type_name,
                    state=_PENDING,
                    priority=int(priority),
                    creation_time=now,
                    last_change_time=now,
                    snapshot=job.serialize(),
                    content=job.content(),
                    progress=_clamp(job.progress()),
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
        return _info(record, time.time()) if record else None

    def infos(self) -> list[JobInfo]:
        """Every job the store knows, sorted by id (as ``GET /jobs``)."""
        now = time.time()
        return [_info(r, now) for r in sorted(self.store.all(), key=lambda r: r.id)]

    def history(self) -> list[JobInfo]:
        """Completed jobs, oldest completion first."""
        now = time.time()
        done = [r for r in self.store.all() if JobState(r.state).completed]
        return [_info(r, now) for r in sorted(done, key=lambda r: r.completion_seq or 0)]

    def clear_history(self) -> int:
        dropped = self.store.drop_history(0)
        for record in dropped:
            self._doom(record.id)
        return len(dropped)

    def queue(self) -> list[JobInfo]:
        """Pending jobs in the order they will run."""
        now = time.time()
        return [_info(r, now) for r in self._pending()]

    def _pending(self) -> list[JobRecord]:
        pending = [r for r in self.store.all() if r.state == _PENDING]
        return sorted(pending, key=lambda r: (-r.priority, r.order_key))

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
            if record.state in (_PENDING, _RETRY):
                if self._move_to(record, _PAUSED, {"retry_at": None}):
                    return True
            elif record.state == _RUNNING:
                if record.request == CANCEL:
                    return True
                if self.store.update(job_id, {"request": PAUSE}, states=[_RUNNING]):
                    return True
            else:
                return True  # Paused, Success, Failure: nothing to do
        return False

    def cancel(self, job_id: str) -> bool:
        for _ in range(10):
            record = self.store.get(job_id)
            if record is None:
                return False
            if record.state in (_PENDING, _RETRY, _PAUSED):
                now = time.time()
                changes = {
                    "state": _FAILURE,
                    "last_change_time": now,
                    "completion_time": now,
                    "error_code": ErrorCode.CanceledJob.number,
                    "error_details": "",
                    "retry_at": None,
                }
                if self.store.update(job_id, changes, states=[record.state], complete=True):
                    with self._lock:
                        self._live.pop(job_id, None)
                    self._emit("state", record, _FAILURE, ErrorCode.CanceledJob.number)
                    self._completed(job_id)
                    return True
            elif record.state == _RUNNING:
                if self.store.update(job_id, {"request": CANCEL}, states=[_RUNNING]):
                    return True
            else:
                return True  # Success, Failure: nothing to do
        return False

    def resume(self, job_id: str) -> bool:
        record = self.store.get(job_id)
        if record is None or record.state != _PAUSED:
            return False
        return self._move_to(record, _PENDING, {})

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
                "progress": _clamp(job.progress()),
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
        if not self._move_to(record, _PENDING, changes, requeue=True):
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
        if state == _PENDING:
            with self._wakeup:
                self._wakeup.notify_all()
        return True

    # --- the queue beyond Orthanc --------------------------------------------------------------

    def move(
        self,
        job_id: str,
        *,
        position: int | str | None = None,
        before: str | None = None,
        after: str | None = None,
    ) -> tuple[int, int]:
        """Moves a pending job; answers its new (index in the queue, priority).

        The queue is ordered by priority (higher first), then by an order key. A job moved
        between two others takes a priority between theirs (the nearest to its own), so that it
        lands exactly where asked; the order keys of the pending jobs are then permuted.
        """
        if sum(x is not None for x in (position, before, after)) != 1:
            raise BadRequest('Give exactly one of "Position", "Before" or "After"')
        pending = self._pending()
        by_id = {r.id: r for r in pending}
        if job_id not in by_id:
            raise BadRequest(f"Job {job_id} is not in the queue (not Pending)")
        remaining = [r.id for r in pending if r.id != job_id]
        size = len(remaining)
        if before is not None or after is not None:
            anchor = before if before is not None else after
            if anchor == job_id or anchor not in by_id:
                raise BadRequest(f"Job {anchor} is not another job in the queue")
            index = remaining.index(anchor) + (0 if before is not None else 1)
        else:
            index = _queue_index(position, size)
        order = [*remaining[:index], job_id, *remaining[index:]]
        priority = by_id[job_id].priority
        if index > 0:
            priority = min(priority, by_id[order[index - 1]].priority)
        if index + 1 < len(order):
            priority = max(priority, by_id[order[index + 1]].priority)
        keys = sorted(r.order_key for r in pending)
        updates = []
        for key, moved_id in zip(keys, order, strict=True):
            record = by_id[moved_id]
            new_priority = priority if moved_id == job_id else record.priority
            if (record.order_key, record.priority) != (key, new_priority):
                updates.append((moved_id, new_priority, key))
        self.store.reorder(updates)
        self._emit("moved", by_id[job_id])
        return index, priority

    @property
    def dispatch(self) -> Dispatch:
        with self._lock:
            if self._dispatching:
                return Dispatch.RUNNING
            return Dispatch.STOPPING if self._running else Dispatch.STOPPED

    def stop_dispatch(self) -> Dispatch:
        """Running jobs finish; no new job starts.

        Taken with the claim lock: once this returns, no worker is between its check of the
        flag and its claim, so no job submitted afterwards can be taken (and handed back later,
        behind the back of a queue reorder).
        """
        with self._claiming, self._lock:
            self._dispatching = False
        return self.dispatch

    def cancel_stop(self) -> Dispatch:
        """Cancels a stop still in progress (jobs still running); a completed stop stays."""
        with self._wakeup:
            if not self._dispatching and self._running:
                self._dispatching = True
                self._wakeup.notify_all()
        return self.dispatch

    def start_dispatch(self) -> Dispatch:
        with self._wakeup:
            self._dispatching = True
            self._wakeup.notify_all()
        return self.dispatch

    # --- waiting and events --------------------------------------------------------------------

    def add_done_callback(self, job_id: str, callback: DoneCallback) -> None:
        """Calls ``callback(info)`` once when the job completes here (``None`` if the job is not
        kept in the history). Called at once if the job is already complete."""
        fired = threading.Event()

        def once(info: JobInfo | None) -> None:
            if not fired.is_set():
                fired.set()
                callback(info)

        with self._lock:
            self._waiters.setdefault(job_id, []).append(once)
        found = self.info(job_id)
        if found is None or found.state.completed:
            with self._lock:
                waiters = self._waiters.get(job_id, [])
                if once in waiters:
                    waiters.remove(once)
            once(found)

    def wait(self, job_id: str, timeout: float | None = None) -> JobInfo | None:
        """Blocks until the job completes; ``None`` if it vanished (history too small)."""
        done = threading.Event()
        result: list[JobInfo | None] = []

        def on_done(info: JobInfo | None) -> None:
            result.append(info)
            done.set()

        self.add_done_callback(job_id, on_done)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done.wait(0.5):
            found = self.info(job_id)  # another process may have run it
            if found is None or found.state.completed:
                return found
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Job {job_id} did not complete in {timeout} s")
        return result[0]

    def subscribe(self, subscriber: EventSubscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def _emit(
        self,
        kind: str,
        record: JobRecord,
        state: str | None = None,
        error_code: int = 0,
        progress: float | None = None,
    ) -> None:
        event = JobEvent(
            kind,
            record.id,
            record.type_name,
            state or record.state,
            _percent(record.progress if progress is None else progress),
            time.time(),
            error_code,
        )
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("Job event subscriber %r failed", subscriber)

    def _completed(self, job_id: str) -> None:
        """A job completed here: trim the history, then tell those waiting for it."""
        self._trim()
        with self._lock:
            waiters = self._waiters.pop(job_id, [])
        if waiters:
            found = self.info(job_id)
            for waiter in waiters:
                try:
                    waiter(found)
                except Exception:
                    log.exception("Job completion callback failed")

    def _trim(self) -> None:
        for record in self.store.drop_history(self.history_size):
            self._doom(record.id)
        for record in self.store.drop_outputs(self.media_archive_size):
            self._doom(record.id)

    def _doom(self, job_id: str, grace: float | None = None) -> None:
        """Deletes the output folder of a job, after a grace delay (a download may be starting)."""
        deadline = time.monotonic() + (self.output_grace if grace is None else grace)
        with self._lock:
            self._doomed.append((deadline, self.output_root / job_id))
        if grace == 0.0 or self.output_grace <= 0:
            self._delete_doomed()

    def _delete_doomed(self, *, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            due = [path for deadline, path in self._doomed if force or deadline <= now]
            self._doomed = [(d, p) for d, p in self._doomed if not (force or d <= now)]
        for path in due:
            shutil.rmtree(path, ignore_errors=True)

    # --- workers -------------------------------------------------------------------------------

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
                        {"state": _PENDING, "lease_owner": None, "lease_expiry": None},
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
                self._finish(record, None, _FAILURE, _as_error(exc), record.runtime)
                return
            # Rebuilt from its last snapshot (after a restart, a pause or on another server).
            log.info(
                "Job %s (%s) resumes at %d %%",
                record.id,
                record.type_name,
                _percent(record.progress),
            )
        self._emit("state", record, _RUNNING)
        output_dir = self.output_root / record.id
        output_dir.mkdir(parents=True, exist_ok=True)
        context = _Context(record.id, output_dir)
        runtime = record.runtime
        percent = _percent(record.progress)
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
                result = StepResult(StepOutcome.FAILURE, _as_error(exc))
            runtime += time.monotonic() - started
            if result.outcome is StepOutcome.CONTINUE:
                try:
                    progress = _clamp(job.progress())
                    changes: dict[str, Any] = {
                        "snapshot": job.serialize(),
                        "content": job.content(),
                        "progress": progress,
                        "runtime": runtime,
                        "lease_expiry": time.time() + self.lease_seconds,
                    }
                except Exception as exc:
                    self._finish(record, job, _FAILURE, _as_error(exc), runtime)
                    return
                owned, request = self.store.save_step(record.id, self.owner, changes)
                if not owned:
                    log.warning("Job %s was taken from this worker (lease lost)", record.id)
                    return
                if _percent(progress) != percent:
                    percent = _percent(progress)
                    self._emit("progress", record, _RUNNING, progress=progress)
                if request == PAUSE:
                    self._stop_job(job, StopReason.PAUSED)
                    self._leave(record, job, _PAUSED, {}, runtime)
                    return
                if request == CANCEL:
                    self._stop_job(job, StopReason.CANCELED)
                    canceled = ObeliskError(code=ErrorCode.CanceledJob)
                    self._finish(record, job, _FAILURE, canceled, runtime, stopped=True)
                    return
                continue
            if result.outcome is StepOutcome.SUCCESS:
                self._finish(record, job, _SUCCESS, None, runtime)
            elif result.outcome is StepOutcome.RETRY:
                self._stop_job(job, StopReason.RETRY)
                retry_at = time.time() + max(0.0, result.retry_after)
                self._leave(record, job, _RETRY, {"retry_at": retry_at}, runtime)
            else:
                error = result.error or ObeliskError(code=ErrorCode.InternalError)
                self._finish(record, job, _FAILURE, error, runtime)
            return

    def _snapshot(self, job: Job | None) -> dict[str, Any]:
        if job is None:
            return {}
        try:
            return {
                "snapshot": job.serialize(),
                "content": job.content(),
                "progress": _clamp(job.progress()),
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
        if self.store.update(record.id, changes, states=[_RUNNING], owner=self.owner):
            self._emit("state", record, state, progress=changes.get("progress"))

    def _release(self, record: JobRecord, job: Job, runtime: float) -> None:
        """Shutdown: the job goes back to Pending with its last snapshot."""
        self._stop_job(job, StopReason.PAUSED)
        self._leave(record, job, _PENDING, {}, runtime)

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
            reason = StopReason.SUCCESS if state == _SUCCESS else StopReason.FAILURE
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
        if state == _SUCCESS:
            changes["progress"] = 1.0
            changes["outputs"] = _outputs(job)
        if not self.store.update(
            record.id, changes, states=[_RUNNING], owner=self.owner, complete=True
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
                            self._emit("state", found, _PENDING)
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


def _queue_index(position: int | str | None, size: int) -> int:
    """Bluesky's ``pos``: "front", "back", or an index (negative from the back)."""
    if position == "front":
        return 0
    if position == "back":
        return size
    if not isinstance(position, int) or isinstance(position, bool):
        raise BadRequest('"Position" must be an integer, "front" or "back"')
    if position >= size or position == -1:
        return size
    if position >= 0:
        return position
    if position < -size - 1:
        return 0
    return size + position + 1


def _clamp(progress: float) -> float:
    return max(0.0, min(1.0, float(progress)))


def _percent(progress: float) -> int:
    return max(0, min(100, round(progress * 100)))


def _as_error(exc: BaseException) -> ObeliskError:
    if isinstance(exc, ObeliskError):
        return exc
    return ObeliskError(code=ErrorCode.InternalError, details=f"{type(exc).__name__}: {exc}")


def _outputs(job: Job | None) -> dict[str, dict[str, str]]:
    if job is None:
        return {}
    try:
        found = job.outputs()
    except Exception:
        log.exception("Job %s: outputs() failed", job.type_name)
        return {}
    return {
        key: {"media_type": o.media_type, "filename": o.filename, "path": str(o.path)}
        for key, o in found.items()
    }


def _not_rebuildable(type_name: str) -> JobFactory:
    def factory(snapshot: dict[str, Any]) -> Job:
        raise ObeliskError(
            f"Jobs of type {type_name} cannot be rebuilt", code=ErrorCode.NotImplemented
        )

    return factory


def _info(record: JobRecord, now: float) -> JobInfo:
    state = JobState(record.state)
    eta = None
    if state is JobState.RUNNING and record.progress > 0.01:
        remaining = record.runtime / record.progress * (1.0 - record.progress)
        eta = format_time(now + remaining)
    outputs = {}
    if state is JobState.SUCCESS:
        outputs = {
            key: JobOutput(o["media_type"], o["filename"], Path(o["path"]))
            for key, o in record.outputs.items()
        }
    return JobInfo(
        id=record.id,
        type_name=record.type_name,
        state=state,
        priority=record.priority,
        progress=record.progress,
        content=record.content,
        creation_time=format_time(record.creation_time),
        last_change_time=format_time(record.last_change_time),
        runtime=record.runtime,
        error_code=error_code_of(record.error_code),
        error_details=record.error_details,
        timestamp=format_time(now),
        completion_time=(
            format_time(record.completion_time or record.last_change_time)
            if state.completed
            else None
        ),
        estimated_time_of_arrival=eta,
        outputs=outputs,
    )
