"""``/tools/metrics-prometheus``, ``/tools/metrics``, ``/tools/log-level*`` and the refusal of
``/tools/execute-script`` while remote scripts are disabled."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from obelisk.errors import NotImplementedYet, ParameterOutOfRange, PermissionDenied
from obelisk.http.params import services
from obelisk.http.responses import ok
from obelisk.log_levels import CATEGORIES, get_verbosity, set_verbosity
from obelisk.metrics import PROMETHEUS_CONTENT_TYPE


async def metrics_prometheus(request: Request) -> Response:
    body = await run_in_threadpool(services(request).metrics.exposition)
    return Response(body, media_type=PROMETHEUS_CONTENT_TYPE)


async def get_metrics_enabled(request: Request) -> Response:
    return PlainTextResponse("1" if services(request).metrics.enabled else "0")


async def put_metrics_enabled(request: Request) -> Response:
    value = (await request.body()).decode("utf-8", "replace").strip().lower()
    if value not in ("0", "1", "true", "false"):
        raise ParameterOutOfRange('The body must be "1" or "0"', details=value)
    services(request).metrics.enabled = value in ("1", "true")
    return ok()


def _category(request: Request) -> str | None:
    """``/tools/log-level`` → None (every category), ``/tools/log-level-http`` → "http"."""
    suffix = request.url.path.rstrip("/").rsplit("/", 1)[-1].removeprefix("log-level")
    return suffix.removeprefix("-") or None


async def get_log_level(request: Request) -> Response:
    return PlainTextResponse(get_verbosity(_category(request)))


async def put_log_level(request: Request) -> Response:
    set_verbosity((await request.body()).decode("utf-8", "replace"), _category(request))
    return PlainTextResponse(get_verbosity(_category(request)))


async def execute_script(request: Request) -> Response:
    if not services(request).settings["ExecuteLuaEnabled"]:
        raise PermissionDenied(
            "Remote script execution is disabled",
            details='set "ExecuteLuaEnabled" to true to allow POST /tools/execute-script',
        )
    raise NotImplementedYet("This server has no script runtime for /tools/execute-script")


_LOG_LEVEL_PATHS = ["/tools/log-level", *(f"/tools/log-level-{c}" for c in CATEGORIES)]

routes = [
    Route("/tools/metrics-prometheus", metrics_prometheus, methods=["GET"]),
    Route("/tools/metrics", get_metrics_enabled, methods=["GET"]),
    Route("/tools/metrics", put_metrics_enabled, methods=["PUT"]),
    *(Route(path, get_log_level, methods=["GET"]) for path in _LOG_LEVEL_PATHS),
    *(Route(path, put_log_level, methods=["PUT"]) for path in _LOG_LEVEL_PATHS),
    Route("/tools/execute-script", execute_script, methods=["POST"]),
]
