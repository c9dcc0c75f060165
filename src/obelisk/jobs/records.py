"""Helpers over the store's job records, shared by the parts of the engine.

The state names are the strings the store keeps (the values of
:class:`~obelisk.jobs.info.JobState`); :func:`info_of` turns a record into the public
:class:`~obelisk.jobs.info.JobInfo`. Nothing here holds state.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from obelisk.errors import ErrorCode, ObeliskError
from obelisk.jobs.info import JobInfo, JobState, error_code_of, format_time
from obelisk.jobs.model import Job, JobFactory, JobOutput
from obelisk.jobs.store import JobRecord

log = logging.getLogger("obelisk.jobs")

PENDING, RUNNING, PAUSED, RETRY = "Pending", "Running", "Paused", "Retry"
SUCCESS, FAILURE = "Success", "Failure"


def clamp_progress(progress: float) -> float:
    return max(0.0, min(1.0, float(progress)))


def progress_percent(progress: float) -> int:
    return max(0, min(100, round(progress * 100)))


def as_error(exc: BaseException) -> ObeliskError:
    if isinstance(exc, ObeliskError):
        return exc
    return ObeliskError(code=ErrorCode.InternalError, details=f"{type(exc).__name__}: {exc}")


def outputs_of(job: Job | None) -> dict[str, dict[str, str]]:
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


def not_rebuildable(type_name: str) -> JobFactory:
    def factory(snapshot: dict[str, Any]) -> Job:
        raise ObeliskError(
            f"Jobs of type {type_name} cannot be rebuilt", code=ErrorCode.NotImplemented
        )

    return factory


def info_of(record: JobRecord, now: float) -> JobInfo:
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
