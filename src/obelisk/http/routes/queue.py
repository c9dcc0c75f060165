"""``/queue``: the job queue beyond Orthanc, after Bluesky's queue server (docs/jobs.md).

Order and moves, all-or-nothing batches, dispatch stop/start, history, a Server-Sent-Events
stream of job events and log lines, and a log tail. Errors are Orthanc error bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from obelisk.errors import BadRequest
from obelisk.http.jobs_support import engine, job_path, job_response
from obelisk.http.params import integer, json_body, json_object
from obelisk.http.responses import OrthancJSON
from obelisk.http.routes.jobs import clear_history, history
from obelisk.jobs.engine import BatchRejected, JobEvent, QueueStatus
from obelisk.jobs.info import format_time
from obelisk.logbuffer import LogLine

#: Seconds between two SSE comments keeping an idle stream open.
KEEP_ALIVE_SECONDS = 15.0
#: Events kept per SSE client while it reads slowly (the oldest are dropped).
CLIENT_BUFFER = 1000


def status_json(status: QueueStatus) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Dispatch": status.dispatch.value,
        "StopPending": status.dispatch.value == "stopping",
        "ConcurrentJobs": status.concurrent_jobs,
        "RunningHere": status.running_here,
        "Node": status.node,
    }
    body.update({state.value: count for state, count in status.counts.items()})
    return body


async def get_queue(request: Request) -> Response:
    jobs = engine(request)
    pending = await run_in_threadpool(jobs.queue)
    items = [
        {
            "Position": position,
            "ID": info.id,
            "Type": info.type_name,
            "Priority": info.priority,
            "CreationTime": info.creation_time,
            "Path": job_path(info.id),
        }
        for position, info in enumerate(pending)
    ]
    return OrthancJSON({"Dispatch": jobs.dispatch.value, "Items": items})


async def add(request: Request) -> Response:
    body = await json_object(request)
    job = await run_in_threadpool(engine(request).validate, body)
    return await job_response(request, job, body, synchronous_default=False)


def _lower_keys(body: dict[str, Any]) -> dict[str, Any]:
    aliases = {"job": "job", "id": "job", "position": "pos", "pos": "pos"}
    return {aliases.get(k.lower(), k.lower()): v for k, v in body.items()}


async def move(request: Request) -> Response:
    body = _lower_keys(await json_object(request))
    job_id = body.get("job")
    if not isinstance(job_id, str):
        raise BadRequest('Field "Job" (the ID of a pending job) is missing')
    for key in ("before", "after"):
        if key in body and not isinstance(body[key], str):
            raise BadRequest(f'Field "{key.title()}" must be a job ID')
    jobs = engine(request)
    index, priority = await run_in_threadpool(
        lambda: jobs.move(
            job_id, position=body.get("pos"), before=body.get("before"), after=body.get("after")
        )
    )
    order = [info.id for info in await run_in_threadpool(jobs.queue)]
    return OrthancJSON({"ID": job_id, "Position": index, "Priority": priority, "Queue": order})


async def batch(request: Request) -> Response:
    body = await json_body(request)
    items = body.get("Items") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise BadRequest('The body must be {"Items": [...]} or a JSON array of job requests')
    try:
        ids = await run_in_threadpool(engine(request).submit_requests, items)
    except BatchRejected as exc:
        results = [
            {"Success": True} if reason is None else {"Success": False, "Message": reason}
            for reason in exc.results
        ]
        # "Details" is JSON so that clients can read the reason of each item.
        details = json.dumps({"Message": exc.message, "Results": results})
        raise BadRequest(details=details) from exc
    return OrthancJSON(
        {
            "Results": [
                {"Success": True, "ID": job_id, "Path": job_path(job_id), "Type": item["Type"]}
                for job_id, item in zip(ids, items, strict=True)
            ]
        }
    )


async def status(request: Request) -> Response:
    return OrthancJSON(status_json(await run_in_threadpool(engine(request).status)))


def _dispatch_action(name: str) -> Any:
    async def handler(request: Request) -> Response:
        jobs = engine(request)
        getattr(jobs, name)()
        return OrthancJSON(status_json(await run_in_threadpool(jobs.status)))

    handler.__name__ = name
    return handler


def event_json(event: JobEvent) -> dict[str, Any]:
    return {
        "Event": event.kind,
        "ID": event.job_id,
        "Type": event.type_name,
        "State": event.state,
        "Progress": event.progress,
        "ErrorCode": event.error_code,
        "Time": format_time(event.time),
    }


def log_json(line: LogLine) -> dict[str, Any]:
    return {
        "Time": format_time(line.time),
        "Level": line.level,
        "Logger": line.logger,
        "Message": line.text,
    }


async def events(request: Request) -> Response:
    """SSE: ``event: job`` (submitted, state, progress, moved) and ``event: log`` lines.

    ``?only=job`` or ``?only=log`` restricts the stream to one of them.
    """
    only = request.query_params.get("only")
    if only not in (None, "job", "log"):
        raise BadRequest('"only" must be "job" or "log"')
    jobs = engine(request)
    loop = asyncio.get_running_loop()
    pending: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(CLIENT_BUFFER)

    def push(kind: str, data: dict[str, Any]) -> None:  # on any thread
        def put() -> None:
            if pending.full():
                pending.get_nowait()
            pending.put_nowait((kind, data))

        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(put)

    unsubscribe = []
    if only in (None, "job"):
        unsubscribe.append(jobs.subscribe(lambda e: push("job", event_json(e))))
    if only in (None, "log"):
        unsubscribe.append(jobs.log_buffer.subscribe(lambda line: push("log", log_json(line))))

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n: connected\n\n"
            while True:
                try:
                    kind, data = await asyncio.wait_for(pending.get(), KEEP_ALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield f"event: {kind}\ndata: {json.dumps(data, sort_keys=True)}\n\n".encode()
        finally:
            for cancel in unsubscribe:
                cancel()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def log_tail(request: Request) -> Response:
    count = integer(request, "nlines", 200) or 0
    if count < 0:
        raise BadRequest('"nlines" must not be negative')
    lines = engine(request).log_buffer.tail(count)
    return OrthancJSON({"Lines": [line.text for line in lines]})


routes = [
    Route("/queue", get_queue, methods=["GET"]),
    Route("/queue/add", add, methods=["POST"]),
    Route("/queue/move", move, methods=["POST"]),
    Route("/queue/batch", batch, methods=["POST"]),
    Route("/queue/status", status, methods=["GET"]),
    Route("/queue/stop", _dispatch_action("stop_dispatch"), methods=["POST"]),
    Route("/queue/stop-cancel", _dispatch_action("cancel_stop"), methods=["POST"]),
    Route("/queue/start", _dispatch_action("start_dispatch"), methods=["POST"]),
    Route("/queue/history", history, methods=["GET"]),
    Route("/queue/history", clear_history, methods=["DELETE"]),
    Route("/queue/events", events, methods=["GET"]),
    Route("/queue/log", log_tail, methods=["GET"]),
]
