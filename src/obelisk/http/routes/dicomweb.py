"""DICOMweb: QIDO-RS, WADO-RS, STOW-RS under ``DicomWeb.Root`` and WADO-URI at ``WadoRoot``.

Routes carry the full prefix rather than sitting in a ``Mount``, so that other modules (the
rendered and thumbnail routes) can add paths under the same root. Protocol logic lives in
:mod:`obelisk.dicomweb`; these handlers only parse, call it and render.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from obelisk.config import Settings
from obelisk.core.levels import Level
from obelisk.dicomweb import qido, stow, wado
from obelisk.dicomweb.locate import Target, locate
from obelisk.dicomweb.media import DICOM_JSON, parse_accept
from obelisk.dicomweb.options import DicomWebOptions
from obelisk.errors import BadRequest
from obelisk.http.params import integer, services
from obelisk.services.ingest import Origin
from obelisk.services.pixels import ImageFormat, PixelService, RenderOptions

Handler = Callable[[Request], Awaitable[Response]]


class DicomJSON(Response):
    media_type = DICOM_JSON

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:  # what orjson refuses (integers beyond 64 bits): the slow path
            return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def options_of(request: Request) -> DicomWebOptions:
    """The options of this app, read from its settings once: the routes were built from them."""
    state = request.app.state
    settings = services(request).settings
    cached: tuple[Settings, DicomWebOptions] | None = getattr(state, "dicomweb_options", None)
    if cached is None or cached[0] is not settings:
        cached = (settings, DicomWebOptions.from_settings(settings))
        state.dicomweb_options = cached
    return cached[1]


def base_url(request: Request, options: DicomWebOptions | None = None) -> str:
    """``http://host:port/dicom-web``: the prefix of RetrieveURL and BulkDataURI values."""
    options = options or options_of(request)
    # the scope's scheme rather than request.url, which would build and parse the whole URL
    scheme = "https" if options.ssl else request.scope.get("scheme", "http")
    host = options.host or request.headers.get("host") or request.url.netloc
    return f"{scheme}://{host}{options.root}"


def _target(request: Request) -> Target:
    params = request.path_params
    return Target(params["study"], params.get("series"), params.get("instance"))


def _scope(request: Request) -> Target | None:
    return _target(request) if "study" in request.path_params else None


def qido_handler(level: Level) -> Handler:
    async def search(request: Request) -> Response:
        query = qido.parse_query(level, request.query_params.multi_items(), _scope(request))
        options = options_of(request)
        url = base_url(request, options)
        results = await run_in_threadpool(
            qido.search, services(request), query, url, options.qido_case_sensitive
        )
        return DicomJSON(results)

    return search


async def retrieve(request: Request) -> Response:
    accept = parse_accept(request.headers.get("accept"))
    body = await run_in_threadpool(wado.retrieve, services(request), _target(request), accept)
    return StreamingResponse(iterate_in_threadpool(body.chunks), media_type=body.media_type)


async def metadata(request: Request) -> Response:
    answer = await run_in_threadpool(
        wado.metadata, services(request), _target(request), base_url(request)
    )
    return DicomJSON(answer)


async def frames(request: Request) -> Response:
    numbers = request.path_params.get("frames")
    target = _target(request)
    url = f"{base_url(request)}/studies/{target.study}/series/{target.series}"
    url += f"/instances/{target.instance}/frames"
    body = await run_in_threadpool(
        wado.frames,
        services(request),
        target,
        wado.parse_frame_list(numbers) if numbers is not None else None,
        parse_accept(request.headers.get("accept")),
        url,
    )
    return Response(b"".join(body.chunks), media_type=body.media_type)


async def bulk(request: Request) -> Response:
    path = wado.parse_bulk_path(request.path_params["path"])
    accept = parse_accept(request.headers.get("accept"))
    body = await run_in_threadpool(wado.bulk, services(request), _target(request), path, accept)
    return Response(b"".join(body.chunks), media_type=body.media_type)


async def store(request: Request) -> Response:
    client = request.client
    origin = Origin(kind="Plugins", remote_ip=client.host if client else "")
    outcome, study_url = await stow.store(
        services(request),
        request.headers.get("content-type", ""),
        await request.body(),
        request.path_params.get("study"),
        base_url(request),
        origin,
    )
    return DicomJSON(outcome.answer(study_url), status_code=outcome.http_status)


async def wado_uri(request: Request) -> Response:
    """``/wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…&contentType=…``."""
    params = request.query_params
    if params.get("requestType") != "WADO":
        raise BadRequest('WADO-URI needs "requestType=WADO"')
    if not params.get("objectUID"):
        raise BadRequest('WADO-URI needs "objectUID"')
    target = Target(params.get("studyUID", ""), params.get("seriesUID") or "", params["objectUID"])
    content_type = wado.wado_uri_content_type(params.get("contentType"))
    if content_type == "application/dicom":
        data = await run_in_threadpool(
            wado.wado_uri, services(request), target, params.get("transferSyntax")
        )
        return Response(data, media_type="application/dicom")
    return await _rendered_wado_uri(request, target, content_type)


_WADO_URI_IMAGES = {"image/jpeg": ImageFormat.JPEG, "image/png": ImageFormat.PNG}


async def _rendered_wado_uri(request: Request, target: Target, content_type: str) -> Response:
    """image/jpeg or image/png: the rendering service draws the requested frame."""
    image_format = _WADO_URI_IMAGES.get(content_type)
    if image_format is None:
        raise BadRequest(f"WADO-URI cannot produce contentType={content_type}", http_status=406)
    frame = (integer(request, "frameNumber", 1) or 1) - 1
    quality = integer(request, "imageQuality", 90) or 90
    options = RenderOptions(format=image_format, quality=quality)
    service = PixelService(services(request).resources)

    def produce() -> bytes:
        resource = locate(service.resources, target)
        return service.render_resource(Level.INSTANCE, resource.public_id, frame, options)

    return Response(await run_in_threadpool(produce), media_type=image_format.media_type)


def routes(settings: Settings) -> list[BaseRoute]:
    """The DICOMweb routes for these settings (none when ``DicomWeb.Enable`` is false)."""
    options = DicomWebOptions.from_settings(settings)
    found: list[BaseRoute] = []
    if options.enable:
        root = options.root
        study = root + "/studies/{study}"
        series = study + "/series/{series}"
        instance = series + "/instances/{instance}"
        found += [
            Route(root + "/studies", qido_handler(Level.STUDY), methods=["GET"]),
            Route(root + "/studies", store, methods=["POST"]),
            Route(root + "/series", qido_handler(Level.SERIES), methods=["GET"]),
            Route(root + "/instances", qido_handler(Level.INSTANCE), methods=["GET"]),
            Route(study, retrieve, methods=["GET"]),
            Route(study, store, methods=["POST"]),
            Route(study + "/metadata", metadata, methods=["GET"]),
            Route(study + "/series", qido_handler(Level.SERIES), methods=["GET"]),
            Route(study + "/instances", qido_handler(Level.INSTANCE), methods=["GET"]),
            Route(series, retrieve, methods=["GET"]),
            Route(series + "/metadata", metadata, methods=["GET"]),
            Route(series + "/instances", qido_handler(Level.INSTANCE), methods=["GET"]),
            Route(instance, retrieve, methods=["GET"]),
            Route(instance + "/metadata", metadata, methods=["GET"]),
            Route(instance + "/frames", frames, methods=["GET"]),
            Route(instance + "/frames/{frames}", frames, methods=["GET"]),
            Route(instance + "/bulk/{path:path}", bulk, methods=["GET"]),
        ]
    if options.enable_wado:
        found.append(Route(options.wado_root, wado_uri, methods=["GET"]))
    return found
