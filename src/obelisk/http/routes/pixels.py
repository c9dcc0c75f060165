"""Orthanc's image routes: ``/instances/{id}[/frames/{n}]/{preview|rendered|image-*|raw|numpy}``.

The decoding and rendering are :mod:`obelisk.services.pixels`; this module reads the arguments
(``Accept``, ``quality``, ``width``/``height``/``smooth``, ``window-center``/``window-width``,
``rescale``/``compress``) and picks the frame (the first one on the instance-level routes);
``/series/{id}/numpy`` stacks every frame of a series in slice order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from pydicom import Dataset
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from obelisk.errors import ErrorCode, ObeliskError, ParameterOutOfRange
from obelisk.http.params import flag, number, services
from obelisk.services import pixels
from obelisk.services.pixels import ImageFormat, IntegerKind, PixelService, RenderOptions

Endpoint = Callable[[Request], Awaitable[Response]]
_BY_MEDIA_TYPE = {fmt.media_type: fmt for fmt in ImageFormat}


def accepted_format(header: str | None, default: ImageFormat = ImageFormat.PNG) -> ImageFormat:
    """The first image type of ``Accept`` that can be produced (``*/*``, ``image/*``: default)."""
    if not header or not header.strip():
        return default
    for part in header.split(","):
        media_type = part.split(";")[0].strip().lower()
        if media_type in _BY_MEDIA_TYPE:
            return _BY_MEDIA_TYPE[media_type]
        if media_type in ("*/*", "image/*"):
            return default
    raise ObeliskError(
        f"Cannot produce any of these image types: {header}",
        code=ErrorCode.NotAcceptable,
        http_status=406,
    )


def _quality(request: Request) -> int:
    return int(number(request, "quality") or 90)


def pixel_service(request: Request) -> PixelService:
    return PixelService(services(request).resources)


#: Makes an answer's body and media type from the stored dataset and the frame number.
Producer = Callable[[Dataset, int], tuple[bytes | str, str]]


async def _answer(request: Request, produce: Producer) -> Response:
    """Reads the instance named by the path, then ``produce`` in a worker thread."""
    service = pixel_service(request)
    instance = request.path_params["id"]
    frame: int = request.path_params.get("frame", 0)
    body, media_type = await run_in_threadpool(lambda: produce(service.dataset(instance), frame))
    return Response(body, media_type=media_type)


def _image_route(make: Callable[[Dataset, int, ImageFormat, int], bytes]) -> Endpoint:
    async def handler(request: Request) -> Response:
        fmt, quality = accepted_format(request.headers.get("accept")), _quality(request)
        return await _answer(request, lambda ds, frame: (make(ds, frame, fmt, quality), fmt.value))

    return handler


def render_options(request: Request) -> RenderOptions:
    """Orthanc's ``/rendered`` arguments."""
    width, height = number(request, "width"), number(request, "height")
    center, window_width = number(request, "window-center"), number(request, "window-width")
    window = None
    if center is not None and window_width is not None:
        window = pixels.Window(center, window_width)
    viewport = None
    if width or height:
        viewport = pixels.Viewport(int(width or 0), int(height or 0))
    return RenderOptions(
        format=accepted_format(request.headers.get("accept")),
        quality=_quality(request),
        window=window,
        viewport=viewport,
        smooth=flag(request, "smooth"),
        orthanc_windowing=True,
    )


async def rendered(request: Request) -> Response:
    options = render_options(request)
    media_type = options.format.media_type
    return await _answer(request, lambda ds, frame: (pixels.render(ds, frame, options), media_type))


async def raw(request: Request) -> Response:
    return await _answer(request, pixels.raw_frame)


async def raw_gz(request: Request) -> Response:
    return await _answer(
        request, lambda ds, frame: (pixels.raw_frame_gz(ds, frame), "application/gzip")
    )


def boolean(request: Request, name: str, default: bool) -> bool:
    """Orthanc's strict boolean arguments: ``true``/``1``/empty, ``false``/``0``, else a 400."""
    text = request.query_params.get(name)
    if text is None:
        return default
    if text in ("", "true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ParameterOutOfRange(
        details=f'Expected a Boolean for GET argument "{name}", found: {text}'
    )


async def numpy(request: Request) -> Response:
    # Orthanc rescales unless told "rescale=false" (or 0); the instance route gives every frame
    rescale, compress = boolean(request, "rescale", True), boolean(request, "compress", False)
    whole_instance = "frame" not in request.path_params

    def produce(dataset: Dataset, frame: int) -> tuple[bytes | str, str]:
        array = pixels.numpy_array(dataset, None if whole_instance else frame, rescale=rescale)
        return pixels.numpy_file(array, compress=compress), "application/octet-stream"

    return await _answer(request, produce)


async def series_numpy(request: Request) -> Response:
    """Every frame of a series in slice order, as (frame, height, width, channels)."""
    rescale, compress = boolean(request, "rescale", True), boolean(request, "compress", False)
    service, series = pixel_service(request), request.path_params["id"]

    def produce() -> bytes:
        return pixels.numpy_file(service.series_numpy(series, rescale=rescale), compress=compress)

    return Response(await run_in_threadpool(produce), media_type="application/octet-stream")


async def matlab(request: Request) -> Response:
    return await _answer(request, lambda ds, frame: (pixels.matlab_text(ds, frame), "text/plain"))


_IMAGE_ROUTES: list[tuple[str, Endpoint]] = [
    ("preview", _image_route(pixels.preview)),
    ("rendered", rendered),
    *(
        (f"image-{kind.name.lower()}", _image_route(partial(pixels.truncated, kind=kind)))
        for kind in IntegerKind
    ),
    ("numpy", numpy),
    ("matlab", matlab),
]

routes = [
    *(
        Route(f"/instances/{{id}}/{name}", handler, methods=["GET"])
        for name, handler in _IMAGE_ROUTES
    ),
    *(
        Route(f"/instances/{{id}}/frames/{{frame:int}}/{name}", handler, methods=["GET"])
        for name, handler in _IMAGE_ROUTES
    ),
    Route("/instances/{id}/frames/{frame:int}/raw", raw, methods=["GET"]),
    Route("/instances/{id}/frames/{frame:int}/raw.gz", raw_gz, methods=["GET"]),
    Route("/series/{id}/numpy", series_numpy, methods=["GET"]),
]
