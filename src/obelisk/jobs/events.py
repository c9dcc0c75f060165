"""Job events and completion waiters, and the history trimming that follows a completion.

Part of :class:`~obelisk.jobs.engine.JobEngine` (a mixin): the workers, the queue control and
Orthanc's actions all report through :meth:`EngineEvents._emit` and
:meth:`EngineEvents._completed`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from obelisk.jobs.engine_state import EngineState
from obelisk.jobs.info import JobInfo
from obelisk.jobs.records import progress_percent
from obelisk.jobs.store import JobRecord

log = logging.getLogger("obelisk.jobs")


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


class EngineEvents(EngineState):
    """Subscribers, completion callbacks and the cleanup of completed jobs."""

    if TYPE_CHECKING:
        # Defined by JobEngine (reading); declared here for the waiters, which read it.
        def info(self, job_id: str) -> JobInfo | None: ...

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
            progress_percent(record.progress if progress is None else progress),
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

    # --- history and output folders ------------------------------------------------------------

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
