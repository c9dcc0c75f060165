"""Modify, anonymize (also ``/tools/bulk-modify|anonymize``), split and merge;
``/tools/create-dicom``; ``/instances/{id}/pdf``."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from obelisk.core.levels import Level
from obelisk.http.jobs_support import job_response
from obelisk.http.params import json_object, services
from obelisk.http.render import store_json
from obelisk.http.responses import OrthancJSON
from obelisk.http.routes.archives import optional_json
from obelisk.services.creation import CreateRequest, CreationService
from obelisk.services.ingest import Origin
from obelisk.services.modification_jobs import ModificationService, OriginInfo


def modifications(request: Request) -> ModificationService:
    """One per application: it holds the lock of the anonymization counter."""
    found = getattr(request.app.state, "obelisk_modifications", None)
    if found is None:
        found = ModificationService(services(request))
        request.app.state.obelisk_modifications = found
    assert isinstance(found, ModificationService)
    return found


def _origin(request: Request) -> OriginInfo:
    client = request.client
    return OriginInfo(
        kind="RestApi",
        remote_ip=client.host if client else "",
        http_username=request.scope.get("obelisk.user", "") or "",
    )


def _modify_route(level: Level, anonymize: bool) -> Route:
    async def endpoint(request: Request) -> Response:
        body = await optional_json(request)
        job = await run_in_threadpool(
            modifications(request).modification_job,
            level,
            request.path_params["id"],
            body,
            anonymize=anonymize,
            origin=_origin(request),
        )
        return await job_response(request, job, body)

    suffix = "anonymize" if anonymize else "modify"
    return Route(f"/{level.plural}/{{id}}/{suffix}", endpoint, methods=["POST"])


def _instance_route(anonymize: bool) -> Route:
    async def endpoint(request: Request) -> Response:
        body = await optional_json(request)
        data = await run_in_threadpool(
            modifications(request).modify_instance,
            request.path_params["id"],
            body,
            anonymize=anonymize,
        )
        return Response(data, media_type="application/dicom")

    suffix = "anonymize" if anonymize else "modify"
    return Route(f"/instances/{{id}}/{suffix}", endpoint, methods=["POST"])


def _bulk_route(anonymize: bool) -> Route:
    async def endpoint(request: Request) -> Response:
        body = await optional_json(request)
        job = await run_in_threadpool(
            modifications(request).bulk_job, body, anonymize=anonymize, origin=_origin(request)
        )
        return await job_response(request, job, body)

    suffix = "anonymize" if anonymize else "modify"
    return Route(f"/tools/bulk-{suffix}", endpoint, methods=["POST"])


async def split(request: Request) -> Response:
    body = await json_object(request)
    job = await run_in_threadpool(
        modifications(request).split_job, request.path_params["id"], body, _origin(request)
    )
    return await job_response(request, job, body)


async def merge(request: Request) -> Response:
    body = await json_object(request)
    job = await run_in_threadpool(
        modifications(request).merge_job, request.path_params["id"], body, _origin(request)
    )
    return await job_response(request, job, body)


async def create_dicom(request: Request) -> Response:
    create = CreateRequest.parse(await json_object(request))
    origin = _origin(request)
    result = await run_in_threadpool(
        CreationService(services(request)).create,
        create,
        Origin(kind="RestApi", remote_ip=origin.remote_ip, http_username=origin.http_username),
    )
    if isinstance(result, list):
        last = result[-1]
        return OrthancJSON(
            {"ID": last.ids.series, "Path": f"/series/{last.ids.series}", "Type": "Series"}
        )
    return OrthancJSON(store_json(result))


async def pdf(request: Request) -> Response:
    data = await run_in_threadpool(
        CreationService(services(request)).pdf, request.path_params["id"]
    )
    return Response(data, media_type="application/pdf")


routes = [
    *[
        _modify_route(level, anonymize)
        for level in (Level.PATIENT, Level.STUDY, Level.SERIES)
        for anonymize in (False, True)
    ],
    _instance_route(False),
    _instance_route(True),
    _bulk_route(False),
    _bulk_route(True),
    Route("/studies/{id}/split", split, methods=["POST"]),
    Route("/studies/{id}/merge", merge, methods=["POST"]),
    Route("/tools/create-dicom", create_dicom, methods=["POST"]),
    Route("/instances/{id}/pdf", pdf, methods=["GET"]),
]
