"""What job-creating routes share: ``Synchronous``/``Priority`` handling and Orthanc's answers.

A route builds its job, then ``return await job_response(request, job, body)``: asynchronous
calls answer ``{"ID": id, "Path": "/jobs/<id>"}`` at once; synchronous calls wait for the job
(without blocking the event loop) and answer ``sync_answer(info)``, by default the job's
``Content``. A failed synchronous job raises its error, as Orthanc does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from obelisk.errors import BadRequest, ErrorCode, ObeliskError
from obelisk.http.params import services
from obelisk.http.responses import OrthancJSON
from obelisk.jobs.engine import JobEngine
from obelisk.jobs.info import JobInfo, JobState
from obelisk.jobs.model import Job

#: How often a synchronous call looks at the store (a job may run in another process).
_POLL_SECONDS = 0.5


def engine(request: Request) -> JobEngine:
    found: JobEngine = services(request).jobs
    return found


def is_synchronous(body: dict[str, Any], default: bool = True) -> bool:
    """``Synchronous`` wins over ``Asynchronous``; neither → ``default``."""
    if "Synchronous" in body:
        return _boolean(body, "Synchronous")
    if "Asynchronous" in body:
        return not _boolean(body, "Asynchronous")
    return default


def priority_of(body: dict[str, Any]) -> int:
    value = body.get("Priority", 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest('Field "Priority" must be an integer')
    return value


def _boolean(body: dict[str, Any], key: str) -> bool:
    value = body[key]
    if not isinstance(value, bool):
        raise BadRequest(f'Field "{key}" must be a Boolean')
    return value


def job_path(job_id: str) -> str:
    return f"/jobs/{job_id}"


async def job_response(
    request: Request,
    job: Job,
    body: dict[str, Any],
    *,
    synchronous_default: bool = True,
    sync_answer: Callable[[JobInfo], Response] | None = None,
) -> Response:
    jobs = engine(request)
    synchronous = is_synchronous(body, synchronous_default)
    priority = priority_of(body)
    job_id = await asyncio.to_thread(jobs.submit, job, priority)
    if not synchronous:
        return OrthancJSON({"ID": job_id, "Path": job_path(job_id)})
    info = await wait_for_job(jobs, job_id)
    if info.state is JobState.FAILURE:
        raise ObeliskError(code=info.error_code, details=info.error_details or None)
    return sync_answer(info) if sync_answer else OrthancJSON(info.content)


async def wait_for_job(jobs: JobEngine, job_id: str) -> JobInfo:
    """Waits until the job is Success or Failure, without blocking the event loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[JobInfo | None] = loop.create_future()

    def on_done(info: JobInfo | None) -> None:
        def settle() -> None:
            if not done.done():
                done.set_result(info)

        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle)

    jobs.add_done_callback(job_id, on_done)
    while True:
        try:
            found = await asyncio.wait_for(asyncio.shield(done), _POLL_SECONDS)
            break
        except TimeoutError:
            found = await asyncio.to_thread(jobs.info, job_id)
            if found is None or found.state.completed:
                break
    if found is None:
        raise ObeliskError(
            'Cannot retrieve the status of the job, make sure that "JobsHistorySize" is not 0',
            code=ErrorCode.InexistentItem,
        )
    return found
