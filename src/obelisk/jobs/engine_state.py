"""The state every part of :class:`~obelisk.jobs.engine.JobEngine` shares, declared once.

The engine is one object split over mixins (events, workers, queue control); each mixin
inherits the declarations below so that its methods are type-checked against them.
``JobEngine.__init__`` sets every attribute (see there for what each one means).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from obelisk.jobs.model import Job, JobFactory, JobValidator
from obelisk.jobs.store import JobStore
from obelisk.logbuffer import LogBuffer

if TYPE_CHECKING:
    from obelisk.jobs.events import DoneCallback, EventSubscriber


@dataclass
class RegisteredKind:
    """What ``JobEngine.register_kind`` was given for one job type."""

    factory: JobFactory
    validate: JobValidator | None


class EngineState:
    """Attributes of the engine (declarations only; no behaviour)."""

    store: JobStore
    concurrent_jobs: int
    history_size: int
    media_archive_size: int
    output_root: Path
    node: str
    owner: str
    lease_seconds: float
    poll_interval: float
    output_grace: float
    log_buffer: LogBuffer

    _temporary_root: bool
    _kinds: dict[str, RegisteredKind]
    _live: dict[str, Job]
    _running: set[str]
    _waiters: dict[str, list[DoneCallback]]
    _subscribers: list[EventSubscriber]
    _doomed: list[tuple[float, Path]]
    _lock: threading.Lock
    _wakeup: threading.Condition
    _claiming: threading.RLock
    _dispatching: bool
    _stopping: threading.Event
    _threads: list[threading.Thread]
