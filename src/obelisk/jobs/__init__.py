"""Jobs: long work as persisted step machines (engine, model, store); ``kinds/`` holds built-ins."""

from obelisk.jobs.engine import BatchRejected, Dispatch, JobEngine, JobEvent, QueueStatus
from obelisk.jobs.info import JobInfo, JobState
from obelisk.jobs.model import (
    Job,
    JobContext,
    JobFactory,
    JobOutput,
    JobValidator,
    StepOutcome,
    StepResult,
    StopReason,
)
from obelisk.jobs.store import JobStore, MemoryJobStore, open_job_store

__all__ = [
    "BatchRejected",
    "Dispatch",
    "Job",
    "JobContext",
    "JobEngine",
    "JobEvent",
    "JobFactory",
    "JobInfo",
    "JobOutput",
    "JobState",
    "JobStore",
    "JobValidator",
    "MemoryJobStore",
    "QueueStatus",
    "StepOutcome",
    "StepResult",
    "StopReason",
    "open_job_store",
]
