"""The queue beyond Orthanc (Bluesky's queue): reordering pending jobs, stopping dispatch.

Part of :class:`~obelisk.jobs.engine.JobEngine` (a mixin).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from obelisk.errors import BadRequest
from obelisk.jobs.events import EngineEvents
from obelisk.jobs.info import JobState
from obelisk.jobs.records import PENDING
from obelisk.jobs.store import JobRecord


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


class QueueControl(EngineEvents):
    """Order of the pending jobs, and whether workers take new ones."""

    def _pending(self) -> list[JobRecord]:
        """Pending jobs in the order they will run (priority, then order key)."""
        pending = [r for r in self.store.all() if r.state == PENDING]
        return sorted(pending, key=lambda r: (-r.priority, r.order_key))

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
