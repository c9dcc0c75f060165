"""``Noop``: a diagnostic job kind, always registered (``docs/jobs.md`` says why).

It reads and writes no DICOM data, only sleeps, so operators can try the queue API (pause, resume,
move, batches, restarts) on a live server, and tests can drive the engine.

Request (``POST /queue/add`` or an item of ``POST /queue/batch``)::

    {"Type": "Noop", "Steps": 10, "StepDuration": 0.5,       # 10 steps of half a second
     "FailAt": 3, "FailCode": 8,                              # optional: fail on step 3
     "RetryAt": 2, "RetryDelay": 1.0,                         # optional: ask a retry once
     "Output": "some text"}                                   # optional: output "result"

``Content`` shows ``Steps``, ``Position`` (steps done) and ``Rebuilds``: the positions at which the
job was rebuilt from its snapshot (after a restart or a pause), which shows that it resumed.
"""

from __future__ import annotations

import time
from typing import Any

from obelisk.errors import BadRequest, ErrorCode, ObeliskError
from obelisk.jobs.info import error_code_of
from obelisk.jobs.model import JobContext, JobOutput, StepResult, StopReason

TYPE_NAME = "Noop"
MAX_STEPS = 1_000_000
MAX_STEP_DURATION = 10.0


class NoopJob:
    type_name = TYPE_NAME

    def __init__(
        self,
        steps: int = 1,
        step_duration: float = 0.0,
        *,
        fail_at: int | None = None,
        fail_code: int = ErrorCode.InternalError.number,
        retry_at: int | None = None,
        retry_delay: float = 0.0,
        output: str | None = None,
    ) -> None:
        self.steps = steps
        self.step_duration = step_duration
        self.fail_at = fail_at
        self.fail_code = fail_code
        self.retry_at = retry_at
        self.retry_delay = retry_delay
        self.output_text = output
        self.position = 0
        self.retried = False
        self.rebuilds: list[int] = []
        self.stops: list[str] = []
        self._output_path: str | None = None

    # --- Job -----------------------------------------------------------------------------------

    def step(self, context: JobContext) -> StepResult:
        if self.position >= self.steps:
            return self._finish(context)
        if self.retry_at is not None and self.position == self.retry_at and not self.retried:
            self.retried = True
            return StepResult.retry(self.retry_delay)
        if self.fail_at is not None and self.position == self.fail_at:
            raise ObeliskError(
                code=error_code_of(self.fail_code), details=f"Noop failed at step {self.position}"
            )
        if self.step_duration:
            time.sleep(self.step_duration)
        self.position += 1
        return StepResult.cont() if self.position < self.steps else self._finish(context)

    def _finish(self, context: JobContext) -> StepResult:
        if self.output_text is not None:
            path = context.output_dir / "noop.txt"
            path.write_text(self.output_text, encoding="utf-8")
            self._output_path = str(path)
        return StepResult.success()

    def progress(self) -> float:
        return 1.0 if self.steps == 0 else self.position / self.steps

    def content(self) -> dict[str, Any]:
        return {
            "Description": "Noop",
            "Steps": self.steps,
            "Position": self.position,
            "Rebuilds": list(self.rebuilds),
        }

    def serialize(self) -> dict[str, Any]:
        return {
            "Type": TYPE_NAME,
            "Steps": self.steps,
            "StepDuration": self.step_duration,
            "FailAt": self.fail_at,
            "FailCode": self.fail_code,
            "RetryAt": self.retry_at,
            "RetryDelay": self.retry_delay,
            "Output": self.output_text,
            "Position": self.position,
            "Retried": self.retried,
            "Rebuilds": list(self.rebuilds),
            "OutputPath": self._output_path,
        }

    def reset(self) -> None:
        self.position = 0
        self.retried = False
        self.rebuilds = []
        self._output_path = None

    def stop(self, reason: StopReason) -> None:
        self.stops.append(reason.value)

    def outputs(self) -> dict[str, JobOutput]:
        if self._output_path is None:
            return {}
        from pathlib import Path

        return {"result": JobOutput("text/plain", "noop.txt", Path(self._output_path))}


def rebuild(snapshot: dict[str, Any]) -> NoopJob:
    """The :data:`~obelisk.jobs.model.JobFactory` of Noop jobs."""
    job = NoopJob(
        int(snapshot["Steps"]),
        float(snapshot["StepDuration"]),
        fail_at=snapshot.get("FailAt"),
        fail_code=int(snapshot.get("FailCode", ErrorCode.InternalError.number)),
        retry_at=snapshot.get("RetryAt"),
        retry_delay=float(snapshot.get("RetryDelay", 0.0)),
        output=snapshot.get("Output"),
    )
    job.position = int(snapshot.get("Position", 0))
    job.retried = bool(snapshot.get("Retried", False))
    job.rebuilds = [*snapshot.get("Rebuilds", []), job.position]
    job._output_path = snapshot.get("OutputPath")
    return job


def _number(
    request: dict[str, Any], key: str, kind: type, default: Any, low: float, high: float
) -> Any:
    value = request.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise BadRequest(f'Noop: "{key}" must be a number' + (" (integer)" if kind is int else ""))
    if not low <= value <= high:
        raise BadRequest(f'Noop: "{key}" must be between {low:g} and {high:g}')
    return kind(value)


def validate(request: dict[str, Any]) -> NoopJob:
    """The validator of ``{"Type": "Noop", …}`` requests."""
    known = {
        "Type",
        "Priority",
        "Synchronous",
        "Asynchronous",
        "Steps",
        "StepDuration",
        "FailAt",
        "FailCode",
        "RetryAt",
        "RetryDelay",
        "Output",
    }
    unknown = sorted(set(request) - known)
    if unknown:
        raise BadRequest(f"Noop: unknown fields {unknown}")
    output = request.get("Output")
    if output is not None and not isinstance(output, str):
        raise BadRequest('Noop: "Output" must be a string')
    return NoopJob(
        _number(request, "Steps", int, 1, 0, MAX_STEPS),
        _number(request, "StepDuration", float, 0.0, 0.0, MAX_STEP_DURATION),
        fail_at=_number(request, "FailAt", int, None, 0, MAX_STEPS),
        fail_code=_number(request, "FailCode", int, ErrorCode.InternalError.number, -1, 10000),
        retry_at=_number(request, "RetryAt", int, None, 0, MAX_STEPS),
        retry_delay=_number(request, "RetryDelay", float, 0.0, 0.0, 3600.0),
        output=output,
    )
