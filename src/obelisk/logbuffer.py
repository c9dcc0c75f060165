"""The last lines of the server log, kept in memory for ``GET /queue/log`` and the event stream.

:class:`LogBuffer` is a :class:`logging.Handler`: installed on a logger (the root one by the jobs
engine), it keeps the newest ``capacity`` formatted lines and passes each new line to its
subscribers (called on the logging thread: they must be quick and must not log).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

_FORMAT = "%(asctime)s %(levelname).1s %(name)s: %(message)s"


@dataclass(frozen=True, slots=True)
class LogLine:
    time: float
    level: str
    logger: str
    text: str


LogSubscriber = Callable[[LogLine], None]


class LogBuffer(logging.Handler):
    def __init__(self, capacity: int = 2000, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter(_FORMAT))
        self._lines: collections.deque[LogLine] = collections.deque(maxlen=capacity)
        self._subscribers: list[LogSubscriber] = []
        self._guard = threading.Lock()
        self._installed_on: logging.Logger | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = LogLine(record.created, record.levelname, record.name, self.format(record))
        except Exception:  # a bad format string must not break the caller
            self.handleError(record)
            return
        with self._guard:
            self._lines.append(line)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            with contextlib.suppress(Exception):  # never log from here: it would recurse
                subscriber(line)

    def tail(self, count: int) -> list[LogLine]:
        with self._guard:
            lines = list(self._lines)
        return lines[-count:] if count > 0 else []

    def subscribe(self, subscriber: LogSubscriber) -> Callable[[], None]:
        with self._guard:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._guard:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def install(self, logger: logging.Logger | None = None) -> None:
        target = logger or logging.getLogger()
        if self._installed_on is None:
            target.addHandler(self)
            self._installed_on = target

    def uninstall(self) -> None:
        if self._installed_on is not None:
            self._installed_on.removeHandler(self)
            self._installed_on = None
