"""The ``/changes`` and ``/exports`` logs, and the stability clock that feeds Stable* changes."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from obelisk.core.changes import ChangeType
from obelisk.core.levels import Level
from obelisk.core.timestamps import now_iso
from obelisk.events import EventBus, ResourceChanged
from obelisk.index.base import Change, ExportedResource, Index

log = logging.getLogger("obelisk.changes")

_STABLE = {
    Level.PATIENT: ChangeType.StablePatient,
    Level.STUDY: ChangeType.StableStudy,
    Level.SERIES: ChangeType.StableSeries,
}


@dataclass(frozen=True)
class ChangesPage:
    changes: list[Change]
    last: int
    done: bool


class ChangeLog:
    def __init__(self, index: Index) -> None:
        self._index = index

    def changes(self, since: int, limit: int) -> ChangesPage:
        """A page of the log as Orthanc gives it.

        ``last`` is the highest sequence number in the page or, for an empty page, the last one
        ever allocated; ``done`` says that no change is left after the page.
        """
        found, last_allocated = self._index.changes(since, limit)
        end = found[-1].seq if found else since
        done = not self._index.has_changes_after(end)
        return ChangesPage(found, found[-1].seq if found else last_allocated, done)

    def last(self) -> ChangesPage:
        """The newest change only (``/changes?last``)."""
        newest = self._index.last_change()
        if newest is None:
            return ChangesPage([], self._index.last_change_seq(), True)
        return ChangesPage([newest], newest.seq, True)

    def clear(self) -> None:
        with self._index.write() as writer:
            writer.clear_changes()

    def exports(self, since: int, limit: int) -> tuple[list[ExportedResource], int, bool]:
        """A page of ``/exports``, its ``Last`` and its ``Done``. ``Last`` is the page's last
        sequence number or, for an empty page, ``since`` (Orthanc's guess for this log, unlike
        ``/changes``); ``Done`` says no entry follows the page (so a page that ends exactly on
        the last entry is done, as in Orthanc)."""
        found, newest = self._index.exports(since, limit)
        last = found[-1].seq if found else since
        return found, last, last >= newest

    def clear_exports(self) -> None:
        with self._index.write() as writer:
            writer.clear_exports()

    def log_export(self, exported: ExportedResource) -> None:
        self.log_exports([exported])

    def log_exports(self, exported: list[ExportedResource]) -> None:
        """Entries in the given order, in one transaction."""
        with self._index.write() as writer:
            for entry in exported:
                writer.log_export(entry)


class StabilityMonitor:
    """Marks patients, studies and series stable ``StableAge`` seconds after their last instance.

    Unlike Orthanc, which keeps unstable resources in memory, the state is in the index: a restart
    neither loses a pending StableStudy nor reports a half-received study as stable.
    """

    def __init__(self, index: Index, bus: EventBus, stable_age: int, period: float = 1.0) -> None:
        self._index = index
        self._bus = bus
        self._stable_age = stable_age
        self._period = period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="obelisk-stability", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def tick(self) -> list[tuple[Level, str]]:
        now = now_iso()
        with self._index.write() as writer:
            stabilized = writer.mark_stable(time.time() - self._stable_age, now)
        for level, public_id in stabilized:
            if level in _STABLE:
                self._bus.publish(ResourceChanged(_STABLE[level], level, public_id, now))
        return stabilized

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self.tick()
            except Exception:
                log.exception("Stability check failed")
