"""Builds the Starlette application over the services."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from obelisk.errors import ObeliskError, UnknownResource
from obelisk.http import convertors  # noqa: F401  (registers the {level:level} convertor)
from obelisk.http.middleware import AccessControl, CollapseSlashes
from obelisk.http.responses import render_error
from obelisk.http.routes import annotations as annotation_routes
from obelisk.http.routes import archives, instances, jobs, queue, resources, system, tools
from obelisk.http.routes import modification as modification_routes
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

    users = settings["RegisteredUsers"]
    app = Starlette(
        routes=[
            *system.routes,
            *tools.routes,
            *jobs.routes,
            *queue.routes,
            *archives.routes,
            *modification_routes.routes,
            *instances.routes,
            *annotation_routes.routes,
            *resources.routes,
        ],
        middleware=[
            Middleware(CollapseSlashes),
            Middleware(
                AccessControl,
                remote_access=bool(settings["RemoteAccessAllowed"]),
                authentication=bool(settings["AuthenticationEnabled"]),
                users=users,
            ),
        ],
        exception_handlers={
            ObeliskError: on_obelisk_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    app.state.services = services
    return app
