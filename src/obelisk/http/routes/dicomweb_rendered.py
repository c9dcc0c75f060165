"""DICOMweb rendered resources (PS3.18 §8.3.5, §9.5.4): ``…/rendered`` and ``…/thumbnail``.

At study, series, instance and frame level under the DICOMweb root (``DicomWeb.Root``, default
``/dicom-web``). Study and series levels render their middle instance (by InstanceNumber), the
instance level its first frame, the frame level the first listed frame (frames are 1-based).

Arguments: ``accept`` (query, or the ``Accept`` header; JPEG by default), ``quality``,
``viewport=vw,vh[,sx,sy,sw,sh]``, ``window=center,width[,linear|linear-exact|sigmoid]``.
Thumbnails fit in 128x128 unless a viewport is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from obelisk.config import Settings
from obelisk.core.levels import Level
from obelisk.dicomweb.locate import Target, locate
from obelisk.dicomweb.options import DicomWebOptions
from obelisk.errors import BadRequest
from obelisk.http.params import number
from obelisk.http.routes.pixels import accepted_format, pixel_service
from obelisk.services.pixels import ImageFormat, PixelService, RenderOptions, Viewport, Window

THUMBNAIL_SIZE = 128


def _integers(text: str, name: str) -> list[int]:
    try:
        return [int(float(part)) for part in text.split(",")]
    except ValueError as exc:
        raise BadRequest(f'Bad "{name}" argument: {text}') from exc


def _viewport(request: Request, thumbnail: bool) -> Viewport | None:
    text = request.query_params.get("viewport")
    if text is None:
        return Viewport(THUMBNAIL_SIZE, THUMBNAIL_SIZE) if thumbnail else None
    values = _integers(text, "viewport")
    if len(values) == 2:
        return Viewport(values[0], values[1])
    if len(values) == 6:
        return Viewport(values[0], values[1], crop=(values[2], values[3], values[4], values[5]))
    raise BadRequest(f'"viewport" takes 2 or 6 values: {text}')


def _window(request: Request) -> Window | None:
    text = request.query_params.get("window")
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise BadRequest(f'"window" takes center,width[,function]: {text}')
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise BadRequest(f'Bad "window" argument: {text}') from exc
    function = parts[2].strip().lower() if len(parts) == 3 else "linear"
    if function not in ("linear", "linear-exact", "sigmoid"):
        raise BadRequest(f"Unknown VOI LUT function: {function}")
    return Window(center, width, function)


def _options(request: Request, thumbnail: bool) -> RenderOptions:
    # the "accept" query parameter wins over the header (PS3.18 §8.3.3.1)
    accept = request.query_params.get("accept") or request.headers.get("accept")
    return RenderOptions(
        format=accepted_format(accept, ImageFormat.JPEG),
        quality=int(number(request, "quality") or 90),
        window=_window(request),
        viewport=_viewport(request, thumbnail),
        smooth=True,
    )


def _handler(level: Level, thumbnail: bool) -> Callable[[Request], Any]:
    async def handler(request: Request) -> Response:
        params = request.path_params
        options = _options(request, thumbnail)
        frames = _integers(params["frames"], "frames") if "frames" in params else [1]
        if frames[0] < 1:
            raise BadRequest("Frame numbers start at 1")
        service = pixel_service(request)

        def produce(service: PixelService) -> bytes:
            target = Target(params["study"], params.get("series"), params.get("instance"))
            resource = locate(service.resources, target)
            return service.render_resource(level, resource.public_id, frames[0] - 1, options)

        body = await run_in_threadpool(produce, service)
        return Response(body, media_type=options.format.media_type)

    return handler


def routes(settings: Settings) -> list[Route]:
    """The eight routes under the DICOMweb root; none when DICOMweb is disabled."""
    options = DicomWebOptions.from_settings(settings)
    if not options.enable:
        return []
    root = options.root
    paths = [
        (Level.STUDY, "/studies/{study}"),
        (Level.SERIES, "/studies/{study}/series/{series}"),
        (Level.INSTANCE, "/studies/{study}/series/{series}/instances/{instance}"),
        (Level.INSTANCE, "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}"),
    ]
    return [
        Route(f"{root}{path}/{kind}", _handler(level, kind == "thumbnail"), methods=["GET"])
        for level, path in paths
        for kind in ("rendered", "thumbnail")
    ]
