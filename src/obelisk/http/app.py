"""Builds the Starlette application over the services."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

from obelisk.errors import ObeliskError, UnknownResource
from obelisk.http import convertors  # noqa: F401  (registers the {level:level} convertor)
from obelisk.http.auth import AccessControl, access_policy
from obelisk.http.middleware import CollapseSlashes, RequestMetrics
from obelisk.http.responses import render_error
from obelisk.http.routes import annotations as annotation_routes
from obelisk.http.routes import (
    archives,
    bulk,
    dicom_tools,
    dicomweb,
    dicomweb_rendered,
    instances,
    jobs,
    modalities,
    observability,
    pixels,
    plugins,
    queries,
    queue,
    resources,
    static,
    storage_commitment,
    system,
    tools,
)
from obelisk.http.routes import modification as modification_routes
from obelisk.http.routing import IndexedRouter
from obelisk.services.context import Services

log = logging.getLogger("obelisk.http")


def create_app(services: Services) -> Starlette:
    settings = services.settings
    describe = bool(settings["HttpDescribeErrors"])

    async def on_obelisk_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ObeliskError)
        return render_error(request, exc, describe=describe)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            unknown = UnknownResource(f"No route for {request.method} {request.url.path}")
            return render_error(request, unknown, describe=describe)
        return Response(status_code=exc.status_code, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("Unexpected error on %s %s", request.method, request.url.path)
        return render_error(request, ObeliskError(details=str(exc)), describe=describe)

    app = Starlette(
        routes=[
            *instances.upload_routes,
            *system.routes,
            *plugins.routes,
            *observability.routes,
            *dicom_tools.routes,
            *tools.routes,
            *bulk.routes,
            *jobs.routes,
            *queue.routes,
            *archives.routes,
            *modification_routes.routes,
            *modalities.routes,
            *storage_commitment.routes,
            *queries.routes,
            *pixels.routes,
            *dicomweb.routes(settings),
            *dicomweb_rendered.routes(settings),
            *static.static_routes(settings),
            *instances.routes,
            *annotation_routes.routes,
            *resources.routes,
        ],
        middleware=[
            *_cors(settings.obelisk["CorsAllowedOrigins"]),
            Middleware(CollapseSlashes),
            Middleware(RequestMetrics, metrics=services.metrics),
            Middleware(AccessControl, policy=access_policy(settings)),
        ],
        exception_handlers={
            ObeliskError: on_obelisk_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    # Same routes, same order; each request only tries those of its first path segment.
    app.router = IndexedRouter(app.router.routes)
    app.state.services = services
    #: Set by the server process: stops it (``restart=True``: then starts it again, reading its
    #: configuration anew). Absent when the app runs without a server of its own (tests).
    app.state.stop_server = None
    return app


def _cors(origins: list[str]) -> list[Middleware]:
    """Outermost, so that preflights are answered before authentication."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Accept", "Content-Type"],
            allow_credentials="*" not in origins,
        )
    ]
