"""The job contract: what a job kind implements and what the engine gives it.

A job is a *step machine* (as in Orthanc): the engine calls :meth:`Job.step` repeatedly; each call
does a short piece of work (about one second at most) and answers with a :class:`StepResult`.
After every step the engine persists :meth:`Job.serialize`, so that a job interrupted by a crash
is rebuilt by its kind's :data:`JobFactory` from the last snapshot and resumes from there.

Job kinds know nothing of HTTP, threads or persistence; the engine (``obelisk.jobs.engine``)
knows nothing of the job kinds beyond this protocol.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from obelisk.errors import ObeliskError


class StepOutcome(enum.Enum):
    """What a step asks the engine to do next."""

    CONTINUE = "Continue"
    SUCCESS = "Success"
    FAILURE = "Failure"
    RETRY = "Retry"


@dataclass(frozen=True)
class StepResult:
    """Answer of :meth:`Job.step`; ``error`` for FAILURE, ``retry_after`` seconds for RETRY."""

    outcome: StepOutcome
    error: ObeliskError | None = None
    retry_after: float = 0.0

    @classmethod
    def cont(cls) -> StepResult:
        return cls(StepOutcome.CONTINUE)

    @classmethod
    def success(cls) -> StepResult:
        return cls(StepOutcome.SUCCESS)

    @classmethod
    def failure(cls, error: ObeliskError | None = None) -> StepResult:
        return cls(StepOutcome.FAILURE, error=error)

    @classmethod
    def retry(cls, after: float) -> StepResult:
        return cls(StepOutcome.RETRY, retry_after=after)


class StopReason(enum.Enum):
    """Why a job leaves the Running state (passed to :meth:`Job.stop`)."""

    PAUSED = "Paused"
    CANCELED = "Canceled"
    SUCCESS = "Success"
    FAILURE = "Failure"
    RETRY = "Retry"


@dataclass(frozen=True)
class JobOutput:
    """A file produced by a job (e.g. an archive), stored in the job's ``output_dir``."""

    media_type: str
    filename: str
    path: Path


class JobContext(Protocol):
    """What the engine gives to :meth:`Job.step`."""

    #: Per-job folder for outputs; survives restarts; removed when the job leaves the history.
    output_dir: Path

    def log(self, message: str) -> None: ...


class Job(Protocol):
    """A step machine; each :meth:`step` is short (≤ ~1 s of work)."""

    #: Orthanc's ``Type``, e.g. ``"Archive"``.
    type_name: str

    def step(self, context: JobContext) -> StepResult: ...

    def progress(self) -> float:
        """0.0–1.0."""
        ...

    def content(self) -> dict[str, Any]:
        """Orthanc's public ``Content`` object."""
        ...

    def serialize(self) -> dict[str, Any]:
        """JSON snapshot; the engine persists it after every step."""
        ...

    def reset(self) -> None:
        """Back to the initial state (for resubmit)."""
        ...

    def stop(self, reason: StopReason) -> None: ...

    def outputs(self) -> dict[str, JobOutput]:
        """E.g. ``{"archive": JobOutput("application/zip", "archive.zip", path)}``."""
        ...


#: Rebuilds a job from its :meth:`Job.serialize` snapshot.
#: Registered with ``engine.register_kind(type_name, factory)``.
JobFactory = Callable[[dict[str, Any]], Job]

#: Builds a job from a REST-style request (``POST /queue/batch`` items); raises ``BadRequest``.
JobValidator = Callable[[dict[str, Any]], Job]
