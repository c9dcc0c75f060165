"""Things that happened, as past-tense events, and the bus that delivers them.

Notifications go to any number of subscribers, on a dispatcher thread, after the change is
committed: a slow or failing subscriber never delays or breaks an ingest. (Filters, which may
veto an operation, are a separate chain owned by the scripting layer.)
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from obelisk.core.changes import ChangeType
from obelisk.core.levels import Level

log = logging.getLogger("obelisk.events")


@dataclass(frozen=True, slots=True)
class ResourceChanged:
    """A line of the ``/changes`` log was written."""

    change_type: ChangeType
    level: Level
    public_id: str
    date: str


@dataclass(frozen=True, slots=True)
class InstanceStored:
    public_id: str
    origin: str
    remote_aet: str


Event = ResourceChanged | InstanceStored
Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, event: Event) -> None:
        if self._subscribers:
            self._ensure_thread()
            self._queue.put(event)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="obelisk-events", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:
                    log.exception("Event subscriber %r failed on %r", subscriber, event)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None
