"""What the engine tells about a job: its state and the public snapshot of it (:class:`JobInfo`)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

from obelisk.errors import ErrorCode
from obelisk.jobs.model import JobOutput

TIME_FORMAT = "%Y%m%dT%H%M%S.%f"


class JobState(enum.Enum):
    """Orthanc's job states (the values are the JSON strings)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILURE = "Failure"
    PAUSED = "Paused"
    RETRY = "Retry"

    @property
    def completed(self) -> bool:
        return self in (JobState.SUCCESS, JobState.FAILURE)


_CODES = {code.number: code for code in ErrorCode}


def error_code_of(number: int) -> ErrorCode:
    return _CODES.get(number, ErrorCode.InternalError)


def format_time(epoch: float) -> str:
    """``YYYYMMDDTHHMMSS.ffffff`` in UTC, as Orthanc's job times."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime(TIME_FORMAT)


@dataclass(frozen=True)
class JobInfo:
    """A job as ``GET /jobs/{id}`` shows it (snake_case; the HTTP layer renders Orthanc's keys)."""

    id: str
    type_name: str
    state: JobState
    priority: int
    progress: float
    content: dict[str, Any]
    creation_time: str
    last_change_time: str
    runtime: float
    error_code: ErrorCode
    error_details: str
    timestamp: str
    completion_time: str | None = None
    estimated_time_of_arrival: str | None = None
    outputs: dict[str, JobOutput] = field(default_factory=dict)

    @property
    def progress_percent(self) -> int:
        return max(0, min(100, round(self.progress * 100)))
