"""Plain ASGI middleware: path clean-up and request metrics (access control is in auth.py)."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from obelisk.metrics import Metrics

log = logging.getLogger("obelisk.http")


class CollapseSlashes:
    """``//system`` → ``/system``: Orthanc drops empty path components and peers rely on it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            path = "/" + "/".join(p for p in scope["path"].split("/") if p)
            scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


class RequestMetrics:
    """``orthanc_rest_api_duration_ms``, ``orthanc_rest_api_active_requests`` and a structured
    debug line per request (method, path, status, duration) on the ``obelisk.http`` logger."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        self.metrics.request_started()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.request_finished()
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.metrics.observe_rest_api(elapsed_ms)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s %s %d %.1f ms",
                    scope["method"],
                    scope["path"],
                    status,
                    elapsed_ms,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed_ms, 3),
                    },
                )
