"""ZIP archives and DICOMDIR media: ``/{level}/{id}/archive|media``, ``/tools/create-archive``,
``/tools/create-media``, ``/tools/create-media-extended``.

Synchronous calls stream the ZIP while it is built; asynchronous ones submit an ``Archive`` or
``Media`` job whose output ``archive`` is then downloaded from ``/jobs/{id}/archive``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from obelisk.core.levels import Level
from obelisk.errors import BadJson, BadRequest
from obelisk.http.jobs_support import is_synchronous, job_response
from obelisk.http.params import flag, services
from obelisk.services.archives import ArchiveJob, ArchiveOptions, plan_archive, stream_archive
from obelisk.services.job_kinds import archive_options

_LEVELS = (Level.PATIENT, Level.STUDY, Level.SERIES)


async def optional_json(request: Request) -> dict[str, Any]:
    """Orthanc accepts an empty body on these POSTs."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadJson("Cannot parse the JSON body of the request", details=str(exc)) from exc
    if not isinstance(body, dict):
        raise BadRequest("The body of the request must be a JSON object")
    return body


def _query_options(request: Request, *, media: bool) -> ArchiveOptions:
    compress = flag(request, "compress") or request.query_params.get("compression") == "deflate"
    return ArchiveOptions(
        media=media,
        extended=flag(request, "extended"),
        deflate=compress,
        transcode=request.query_params.get("transcode") or None,
    )


async def _answer(
    request: Request,
    resources: list[str],
    options: ArchiveOptions,
    body: dict[str, Any],
    filename: str,
) -> Response:
    svc = services(request)
    entries = await run_in_threadpool(plan_archive, svc, resources, media=options.media)
    if is_synchronous(body, True):
        return StreamingResponse(
            stream_archive(svc, entries, options),
            media_type="application/zip",
            headers={"Content-Disposition": f'filename="{filename}"'},
        )
    return await job_response(request, ArchiveJob.create(svc, entries, options), body)


def _resource_route(level: Level, media: bool, method: str) -> Route:
    async def endpoint(request: Request) -> Response:
        public_id = request.path_params["id"]
        await run_in_threadpool(services(request).resources.get, level, public_id)
        if method == "GET":
            options, body = _query_options(request, media=media), {}
        else:
            body = await optional_json(request)
            options = archive_options(body, media=media)
        return await _answer(request, [public_id], options, body, f"{public_id}.zip")

    suffix = "media" if media else "archive"
    return Route(f"/{level.plural}/{{id}}/{suffix}", endpoint, methods=[method])


def _tools_route(name: str, media: bool, extended: bool) -> Route:
    async def endpoint(request: Request) -> Response:
        body = await optional_json(request)
        resources = body.get("Resources")
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise BadRequest('"Resources" must be a list of Orthanc identifiers')
        if extended:
            body = {**body, "Extended": True}
        options = archive_options(body, media=media)
        return await _answer(request, resources, options, body, "archive.zip")

    return Route(f"/tools/{name}", endpoint, methods=["POST"])


routes = [
    *[
        _resource_route(level, media, method)
        for level in _LEVELS
        for media in (False, True)
        for method in ("GET", "POST")
    ],
    _tools_route("create-archive", False, False),
    _tools_route("create-media", True, False),
    _tools_route("create-media-extended", True, True),
]
