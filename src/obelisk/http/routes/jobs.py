"""``/jobs``: Orthanc's jobs REST API (list, info, actions, outputs) and the history."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from obelisk.errors import InexistentItem
from obelisk.http.jobs_support import engine
from obelisk.http.params import flag
from obelisk.http.responses import OrthancJSON, ok
from obelisk.jobs.info import JobInfo


def job_json(info: JobInfo) -> dict[str, Any]:
    """``GET /jobs/{id}`` as Orthanc 1.10.1 writes it."""
    body: dict[str, Any] = {
        "ID": info.id,
        "Type": info.type_name,
        "State": info.state.value,
        "Priority": info.priority,
        "Progress": info.progress_percent,
        "Content": info.content,
        "CreationTime": info.creation_time,
        "Timestamp": info.timestamp,
        "EffectiveRuntime": round(info.runtime, 3),
        "ErrorCode": info.error_code.number,
        "ErrorDescription": info.error_code.description,
        "ErrorDetails": info.error_details,
    }
    if info.estimated_time_of_arrival is not None:
        body["EstimatedTimeOfArrival"] = info.estimated_time_of_arrival
    if info.completion_time is not None:
        body["CompletionTime"] = info.completion_time
    return body


async def list_jobs(request: Request) -> Response:
    infos = await run_in_threadpool(engine(request).infos)
    if flag(request, "expand"):
        return OrthancJSON([job_json(info) for info in infos])
    return OrthancJSON([info.id for info in infos])


async def get_job(request: Request) -> Response:
    info = await run_in_threadpool(engine(request).info, request.path_params["id"])
    if info is None:
        return Response(status_code=404)
    return OrthancJSON(job_json(info))


def _action(name: str) -> Any:
    async def handler(request: Request) -> Response:
        jobs = engine(request)
        done = await run_in_threadpool(getattr(jobs, name), request.path_params["id"])
        return ok() if done else Response(status_code=400)

    handler.__name__ = f"{name}_job"
    return handler


async def job_output(request: Request) -> Response:
    key = request.path_params["key"]
    found = await run_in_threadpool(engine(request).output, request.path_params["id"], key)
    if found is None or not found.path.is_file():
        raise InexistentItem(details=f"Job has no such output: {key}")
    return FileResponse(
        found.path,
        media_type=found.media_type,
        headers={"Content-Disposition": f'filename="{found.filename}"'},
    )


async def history(request: Request) -> Response:
    infos = await run_in_threadpool(engine(request).history)
    return OrthancJSON([job_json(info) for info in infos])


async def clear_history(request: Request) -> Response:
    await run_in_threadpool(engine(request).clear_history)
    return ok()


routes = [
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/history", history, methods=["GET"]),
    Route("/jobs/history", clear_history, methods=["DELETE"]),
    Route("/jobs/{id}", get_job, methods=["GET"]),
    *(
        Route(f"/jobs/{{id}}/{name}", _action(name), methods=["POST"])
        for name in ("cancel", "pause", "resume", "resubmit")
    ),
    Route("/jobs/{id}/{key}", job_output, methods=["GET"]),
]
