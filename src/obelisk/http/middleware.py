"""Plain ASGI middleware: path clean-up, remote access and HTTP Basic authentication."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send


class CollapseSlashes:
    """``//system`` → ``/system``: Orthanc drops empty path components and peers rely on it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            path = "/" + "/".join(p for p in scope["path"].split("/") if p)
            scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


async def _deny(send: Send, status: int, message: str, headers: Mapping[str, str] = {}) -> None:
    body = json.dumps({"HttpStatus": status, "Message": message}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class AccessControl:
    """``RemoteAccessAllowed`` (false: loopback clients only) and ``RegisteredUsers``.

    The authenticated user name is left in ``scope["obelisk.user"]`` for the routes
    (HttpUsername metadata) and for permission checks.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        remote_access: bool,
        authentication: bool,
        users: Mapping[str, str],
    ) -> None:
        self.app = app
        self.remote_access = remote_access
        self.authentication = authentication
        self.users = dict(users)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if not self.remote_access and not is_loopback(client[0] if client else None):
            await _deny(send, 403, "Remote access is disabled (RemoteAccessAllowed is false)")
            return
        if self.authentication:
            user = self._authenticate(scope)
            if user is None:
                await _deny(
                    send,
                    401,
                    "Authentication required",
                    {"www-authenticate": 'Basic realm="Obelisk"'},
                )
                return
            scope = dict(scope)
            scope["obelisk.user"] = user
        await self.app(scope, receive, send)

    def _authenticate(self, scope: Scope) -> str | None:
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:6].lower() == b"basic ":
                try:
                    decoded = base64.b64decode(value[6:].strip()).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    return None
                user, _, password = decoded.partition(":")
                if user in self.users and self.users[user] == password:
                    return user
        return None
