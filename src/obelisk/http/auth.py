"""Access control on the HTTP edge: remote access, authentication, then permissions.

One plain ASGI middleware, :class:`AccessControl`, decides every request before any route runs:

1. ``RemoteAccessAllowed`` false → clients other than loopback get 403.
2. Authentication (``AuthenticationEnabled``; when the option is absent it follows
   ``RemoteAccessAllowed``, as in Orthanc ≥ 1.5.8): HTTP Basic against ``RegisteredUsers`` or a
   bearer token from ``Obelisk.BearerTokens`` (name → token). No or bad credentials → 401 with
   ``WWW-Authenticate``.
3. Permissions (``Obelisk.PermissionsFile``, :mod:`obelisk.services.permissions`): the request's
   path family and method give the permission it needs (:mod:`obelisk.http.access_rules`); a
   principal without it → 403 naming the missing permission.

The principal's name is left in ``scope["obelisk.user"]`` (HttpUsername metadata).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from obelisk.config import Settings
from obelisk.errors import ObeliskError, PermissionDenied, Unauthorized
from obelisk.http.access_rules import (
    RULES,
    AccessRule,
    dicomweb_rules,
    read_prefix_rule,
    required_permission,
)
from obelisk.http.responses import render_error
from obelisk.services.permissions import Permissions

log = logging.getLogger("obelisk.http.auth")

#: Orthanc's realm: some clients show it in their password prompt.
REALM = "Orthanc Secure Area"

#: Orthanc ≥ 1.5.8 registers this user when remote access is allowed with no user declared.
DEFAULT_USER = ("orthanc", "orthanc")


@dataclass
class AccessPolicy:
    remote_access: bool = False
    authentication: bool = False
    users: Mapping[str, str] = field(default_factory=dict)
    tokens: Mapping[str, str] = field(default_factory=dict)  # token → principal name
    permissions: Permissions = field(default_factory=lambda: Permissions(None))
    rules: Sequence[AccessRule] = RULES
    describe_errors: bool = True
    permission_for: Callable[[str, str], str] = field(init=False, repr=False)

    def authenticate(self, scope: Scope) -> str | None:
        """The principal named by the request's credentials, or ``None``."""
        for name, value in scope.get("headers", []):
            if name != b"authorization":
                continue
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"basic":
                return self._basic(credentials.strip())
            if scheme.lower() == b"bearer":
                return self._bearer(credentials.strip())
        return None

    def _basic(self, credentials: bytes) -> str | None:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        expected = self.users.get(user)
        if expected is not None and hmac.compare_digest(expected.encode(), password.encode()):
            return user
        return None

    def _bearer(self, credentials: bytes) -> str | None:
        token = credentials.decode("latin-1")
        found = None
        for candidate, principal in self.tokens.items():  # compare all: no timing hint
            if hmac.compare_digest(candidate.encode("latin-1"), token.encode("latin-1")):
                found = principal
        return found

    def __post_init__(self) -> None:
        # The rules are regular expressions tried in turn: remember the answers (bounded).
        self.permission_for = functools.lru_cache(maxsize=4096)(
            functools.partial(required_permission, rules=self.rules)
        )

    def check(self, scope: Scope) -> tuple[str | None, ObeliskError | None]:
        """(principal, refusal) for an HTTP request."""
        client = scope.get("client")
        if not self.remote_access and not is_loopback(client[0] if client else None):
            return None, PermissionDenied(
                "Remote access is disabled", details="RemoteAccessAllowed is false"
            )
        if not self.authentication:
            return None, None
        principal = self.authenticate(scope)
        if principal is None:
            return None, Unauthorized()
        needed = self.permission_for(scope["method"], scope["path"])
        if self.permissions.allows(principal, needed):
            return principal, None
        groups = ", ".join(self.permissions.groups_of(principal)) or "none"
        return principal, PermissionDenied(
            f'Missing permission "{needed}"',
            details=f'user "{principal}" (groups: {groups}) may not {scope["method"]} '
            f"{scope['path']}",
        )


@functools.lru_cache(maxsize=1024)  # parsing an address costs more than the rest of a check
def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def access_policy(settings: Settings) -> AccessPolicy:
    """The policy the settings ask for (raises ``ConfigurationError`` on a bad permissions file)."""
    remote = bool(settings["RemoteAccessAllowed"])
    explicit = settings["AuthenticationEnabled"]
    authentication = remote if explicit is None else bool(explicit)
    if remote and explicit is False:
        log.warning("Remote access is allowed while authentication is disabled: INSECURE setup")
    users = {str(k): str(v) for k, v in settings["RegisteredUsers"].items()}
    tokens = {str(token): str(name) for name, token in settings.obelisk["BearerTokens"].items()}
    if authentication and not users and not tokens and remote:
        log.warning(
            'Authentication is enabled but no user is declared: creating the default user "%s" '
            '(review "RegisteredUsers"): INSECURE setup',
            DEFAULT_USER[0],
        )
        users = dict([DEFAULT_USER])
    # Families whose prefix is configurable: the configured prefixes come first.
    dicomweb = settings["DicomWeb"]
    rules = [
        *dicomweb_rules(
            str(dicomweb.get("Root", "/dicom-web/")), str(dicomweb.get("WadoRoot", "/wado"))
        ),
        *RULES,
    ]
    docroot_path = str(settings.obelisk.get("StaticDocrootPath") or "")
    if docroot_path.startswith("/"):
        rules.append(read_prefix_rule(docroot_path))
    return AccessPolicy(
        remote_access=remote,
        authentication=authentication,
        users=users,
        tokens=tokens,
        permissions=Permissions(_permissions_path(settings)),
        rules=tuple(rules),
        describe_errors=bool(settings["HttpDescribeErrors"]),
    )


def _permissions_path(settings: Settings) -> Path | None:
    configured = str(settings.obelisk["PermissionsFile"])
    if not configured:
        return None
    return settings.resolve_path(configured)


class AccessControl:
    def __init__(self, app: ASGIApp, *, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            scope = dict(scope, method="GET")
        principal, refusal = self.policy.check(scope)
        if refusal is not None:
            await self._refuse(scope, receive, send, refusal, principal)
            return
        if principal is not None:
            scope = dict(scope)
            scope["obelisk.user"] = principal
        await self.app(scope, receive, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, refusal: ObeliskError, who: str | None
    ) -> None:
        log.info(
            "Refused %s %s: %s",
            scope["method"],
            scope["path"],
            refusal,
            extra={"user": who or "", "status": refusal.http_status},
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = render_error(Request(scope), refusal, describe=self.policy.describe_errors)
        if refusal.http_status == 401:
            response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
        await response(scope, receive, send)
