"""Where jobs live between steps: the :class:`JobStore` protocol and its in-memory implementation.

The store is the source of truth for the queue. A worker *claims* a job (Pending, or Running with
an expired lease) by writing its owner id and a lease expiry; it renews the lease while the job
runs and saves the job's snapshot after every step. Because claiming is atomic in the store,
several engines (threads or processes) may share one store and each job runs once at a time.

Implementations: :class:`MemoryJobStore` (here; ``SaveJobs: false`` and unit tests) and the SQL
ones in :mod:`obelisk.jobs.sqlstore` (SQLite file or PostgreSQL, next to the index tables).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Requests a worker honours between two steps of a running job.
PAUSE = "pause"
CANCEL = "cancel"

COMPLETED_STATES = ("Success", "Failure")


@dataclass
class JobRecord:
    """One row of the store. Times are epoch seconds; JSON columns are dicts."""

    id: str
    type_name: str
    state: str
    priority: int
    creation_time: float
    last_change_time: float
    snapshot: dict[str, Any]
    content: dict[str, Any] = field(default_factory=dict)
    order_key: int = 0
    completion_seq: int | None = None
    completion_time: float | None = None
    runtime: float = 0.0
    error_code: int = 0
    error_details: str = ""
    progress: float = 0.0
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    request: str | None = None
    lease_owner: str | None = None
    lease_expiry: float | None = None
    retry_at: float | None = None


#: Columns that :meth:`JobStore.update` may change.
UPDATABLE = frozenset(
    {
        "state",
        "priority",
        "last_change_time",
        "snapshot",
        "content",
        "completion_time",
        "runtime",
        "error_code",
        "error_details",
        "progress",
        "outputs",
        "request",
        "lease_owner",
        "lease_expiry",
        "retry_at",
    }
)


class JobStore(Protocol):
    """Persistence and atomic claiming of jobs."""

    def insert(self, records: list[JobRecord]) -> None:
        """Adds jobs at the back of the queue, in this order (sets their ``order_key``)."""

    def get(self, job_id: str) -> JobRecord | None: ...

    def all(self) -> list[JobRecord]: ...

    def claim(
        self, owner: str, types: Collection[str], now: float, lease_until: float
    ) -> JobRecord | None:
        """Atomically takes the next runnable job of one of ``types``: Pending (highest priority,
        then lowest order key) or Running with a lease expired before ``now``; marks it Running
        with ``owner`` and ``lease_until``, clears its pending request. ``None`` when idle."""

    def update(
        self,
        job_id: str,
        changes: dict[str, Any],
        *,
        states: Collection[str] | None = None,
        owner: str | None = None,
        complete: bool = False,
        requeue: bool = False,
    ) -> bool:
        """Compare-and-set: applies ``changes`` if the job is in one of ``states`` (any if None)
        and, when ``owner`` is given, still leased by it. ``complete`` gives the job the next
        completion number (history order); ``requeue`` puts it at the back of the queue."""

    def save_step(
        self, job_id: str, owner: str, changes: dict[str, Any]
    ) -> tuple[bool, str | None]:
        """After a step: saves ``changes`` if ``owner`` still holds the running job; answers
        (still owned, pending request)."""

    def renew(self, owner: str, job_ids: Iterable[str], lease_until: float) -> None: ...

    def recover(self, node: str, now: float) -> int:
        """At start: Running jobs of this ``node`` (any earlier process) or with an expired lease,
        and Retry jobs, go back to Pending. Answers how many."""

    def promote_retries(self, now: float) -> list[str]:
        """Retry jobs whose time has come go back to Pending."""

    def drop_history(self, keep: int) -> list[JobRecord]:
        """Deletes the completed jobs but the ``keep`` most recently completed; answers them."""

    def drop_outputs(self, keep: int) -> list[JobRecord]:
        """Forgets the outputs of completed jobs but the ``keep`` most recent ones that have
        outputs; answers the records as they were (to delete their files)."""

    def reorder(self, keys: list[tuple[str, int, int]]) -> None:
        """Sets (priority, order key) of Pending jobs: ``[(id, priority, order_key), …]``."""

    def delete_all(self) -> list[JobRecord]: ...

    def close(self) -> None: ...


class MemoryJobStore:
    """A :class:`JobStore` in a dict, for ``SaveJobs: false`` and tests (not shared)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobRecord] = {}
        self._order = 0
        self._completion = 0

    def insert(self, records: list[JobRecord]) -> None:
        with self._lock:
            for record in records:
                if record.id in self._jobs:
                    raise ValueError(f"Job {record.id} already exists")
            for record in records:
                self._order += 1
                record.order_key = self._order
                self._jobs[record.id] = copy.deepcopy(record)

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            found = self._jobs.get(job_id)
            return copy.deepcopy(found) if found else None

    def all(self) -> list[JobRecord]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._jobs.values()]

    def claim(
        self, owner: str, types: Collection[str], now: float, lease_until: float
    ) -> JobRecord | None:
        with self._lock:
            candidates = [
                r
                for r in self._jobs.values()
                if r.type_name in types
                and (
                    r.state == "Pending" or (r.state == "Running" and (r.lease_expiry or 0.0) < now)
                )
            ]
            if not candidates:
                return None
            chosen = min(candidates, key=lambda r: (-r.priority, r.order_key))
            chosen.state = "Running"
            chosen.lease_owner = owner
            chosen.lease_expiry = lease_until
            chosen.request = None
            chosen.last_change_time = now
            return copy.deepcopy(chosen)

    def update(
        self,
        job_id: str,
        changes: dict[str, Any],
        *,
        states: Collection[str] | None = None,
        owner: str | None = None,
        complete: bool = False,
        requeue: bool = False,
    ) -> bool:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"Cannot update {sorted(unknown)}")
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None or (states is not None and record.state not in states):
                return False
            if owner is not None and record.lease_owner != owner:
                return False
            for key, value in changes.items():
                setattr(record, key, copy.deepcopy(value))
            if complete:
                self._completion += 1
                record.completion_seq = self._completion
            elif "state" in changes:
                record.completion_seq = None
            if requeue:
                self._order += 1
                record.order_key = self._order
            return True

    def save_step(
        self, job_id: str, owner: str, changes: dict[str, Any]
    ) -> tuple[bool, str | None]:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None or record.state != "Running" or record.lease_owner != owner:
                return False, None
            for key, value in changes.items():
                setattr(record, key, copy.deepcopy(value))
            return True, record.request

    def renew(self, owner: str, job_ids: Iterable[str], lease_until: float) -> None:
        with self._lock:
            for job_id in job_ids:
                record = self._jobs.get(job_id)
                if record and record.state == "Running" and record.lease_owner == owner:
                    record.lease_expiry = lease_until

    def recover(self, node: str, now: float) -> int:
        count = 0
        with self._lock:
            for record in self._jobs.values():
                mine = (record.lease_owner or "").startswith(node + "/")
                stale = record.state == "Running" and (mine or (record.lease_expiry or 0.0) < now)
                if stale or record.state == "Retry":
                    record.state = "Pending"
                    record.lease_owner = record.lease_expiry = record.retry_at = None
                    record.request = None
                    count += 1
        return count

    def promote_retries(self, now: float) -> list[str]:
        promoted = []
        with self._lock:
            for record in self._jobs.values():
                if record.state == "Retry" and (record.retry_at or 0.0) <= now:
                    record.state = "Pending"
                    record.retry_at = None
                    record.last_change_time = now
                    promoted.append(record.id)
        return promoted

    def _completed(self) -> list[JobRecord]:
        done = [r for r in self._jobs.values() if r.state in COMPLETED_STATES]
        return sorted(done, key=lambda r: r.completion_seq or 0, reverse=True)

    def drop_history(self, keep: int) -> list[JobRecord]:
        with self._lock:
            dropped = self._completed()[max(keep, 0) :]
            for record in dropped:
                del self._jobs[record.id]
            return dropped

    def drop_outputs(self, keep: int) -> list[JobRecord]:
        with self._lock:
            with_outputs = [r for r in self._completed() if r.outputs]
            dropped = [copy.deepcopy(r) for r in with_outputs[max(keep, 0) :]]
            for record in with_outputs[max(keep, 0) :]:
                record.outputs = {}
            return dropped

    def reorder(self, keys: list[tuple[str, int, int]]) -> None:
        with self._lock:
            for job_id, priority, order_key in keys:
                record = self._jobs.get(job_id)
                if record is not None and record.state == "Pending":
                    record.priority = priority
                    record.order_key = order_key

    def delete_all(self) -> list[JobRecord]:
        with self._lock:
            dropped = list(self._jobs.values())
            self._jobs.clear()
            return dropped

    def close(self) -> None:
        return None


def open_job_store(location: str) -> JobStore:
    """``postgresql://…`` → PostgreSQL; ``:memory:`` (or ``""``) → memory; else a SQLite file."""
    if not location or location == ":memory:" or "mode=memory" in location:
        return MemoryJobStore()
    from obelisk.jobs.sqlstore import PostgresJobStore, SqliteJobStore

    if location.startswith(("postgresql://", "postgres://")):
        return PostgresJobStore(location)
    return SqliteJobStore(location)
