"""Every route of the app, with authentication on: 401 without credentials, 403 without the
permission its family needs, and through for a user who has exactly that permission.

The routes are read from ``app.routes``, so a route added by any module is checked here without
editing this file; an unknown kind of route (not Route/Mount) fails the test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from obelisk.http.access_rules import required_permission
from obelisk.http.app import create_app
from obelisk.http.auth import AccessControl, AccessPolicy
from obelisk.services.context import Services
from obelisk.services.permissions import PERMISSIONS
from tests.conftest import make_services

PASSWORD = "pw"


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write_permissions(path: Path) -> None:
    """Per permission P: a user holding only P and a user holding everything but P."""
    groups, users = {}, {}
    for permission in PERMISSIONS:
        groups[f"only-{permission}"] = [permission]
        groups[f"all-but-{permission}"] = [p for p in PERMISSIONS if p != permission]
        users[f"only-{permission}"] = [f"only-{permission}"]
        users[f"all-but-{permission}"] = [f"all-but-{permission}"]
    path.write_text(json.dumps({"Groups": groups, "Users": users}))


def secured_services(tmp_path: Path) -> Services:
    permissions = tmp_path / "permissions.json"
    write_permissions(permissions)
    users = {f"{kind}-{p}": PASSWORD for p in PERMISSIONS for kind in ("only", "all-but")}
    # A docroot and a (fake) viewer, so that their routes are in the app too.
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html></html>")
    return make_services(
        AuthenticationEnabled=True,
        RegisteredUsers=users,
        Obelisk={
            "PermissionsFile": str(permissions),
            "StaticDocroot": str(site),
            "ViewerDirectory": str(site),
        },
    )


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    template: str

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


_SAMPLES = {
    "IntegerConvertor": "1",
    "FloatConvertor": "1.5",
    "PathConvertor": "a/b",
    "UUIDConvertor": "0b6d1a9e-4f3c-4c3e-9a57-1b2f3c4d5e6f",
    "LevelConvertor": "studies",
}


def _example_path(route: Route | Mount) -> str:
    values = {}
    for name, convertor in route.param_convertors.items():
        sample = _SAMPLES.get(type(convertor).__name__, f"x{name}")
        values[name] = convertor.to_string(convertor.convert(sample))
    return route.path_format.format(**values)


def policy_of(app: Starlette) -> AccessPolicy:
    """The policy the app's AccessControl middleware applies (rules from its settings)."""
    [policy] = [m.kwargs["policy"] for m in app.user_middleware if m.cls is AccessControl]
    assert isinstance(policy, AccessPolicy)
    return policy


def probes(routes: list[BaseRoute]) -> Iterator[Probe]:
    for route in routes:
        if isinstance(route, Route):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                yield Probe(method, _example_path(route), route.path)
        elif isinstance(route, Mount):
            yield Probe("GET", _example_path(route) + "/index.html", route.path + "/…")
        else:
            raise AssertionError(f"Unknown kind of route {route!r}: teach this test to probe it")


def _stub_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The same paths and methods, with handlers that only say they were reached."""

    async def reached(request: Request) -> Response:
        return PlainTextResponse("reached")

    async def reached_asgi(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("reached")(scope, receive, send)

    stubs: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Route):
            stubs.append(Route(route.path, reached, methods=route.methods))
        elif isinstance(route, Mount):
            stubs.append(Mount(route.path, app=reached_asgi))
    return stubs


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Starlette, Starlette]]:
    """The real app, and a twin with the same routes and middleware whose handlers are stubs."""
    services = secured_services(tmp_path)
    app = create_app(services)
    twin = Starlette(routes=_stub_routes(app.routes), middleware=app.user_middleware)
    yield app, twin
    services.close()


def test_every_route_needs_credentials_and_its_permission(
    secured: tuple[Starlette, Starlette],
) -> None:
    app, twin = secured
    all_probes = list(probes(app.routes))
    permission_for = policy_of(app).permission_for
    assert len(all_probes) > 100  # the whole API is here, not an empty list
    failures: list[str] = []
    with (
        TestClient(app, client=("127.0.0.1", 50000), raise_server_exceptions=False) as real,
        TestClient(twin, client=("127.0.0.1", 50000), raise_server_exceptions=False) as stub,
    ):
        for probe in all_probes:
            needed = permission_for(probe.method, probe.path)
            anonymous = real.request(probe.method, probe.path)
            if anonymous.status_code != 401 or "Basic" not in anonymous.headers.get(
                "www-authenticate", ""
            ):
                failures.append(f"{probe}: no credentials gave {anonymous.status_code}")
            lacking = real.request(probe.method, probe.path, headers=basic(f"all-but-{needed}"))
            if lacking.status_code != 403 or f'"{needed}"' not in lacking.json()["Details"]:
                failures.append(f"{probe}: user without {needed} gave {lacking.status_code}")
            allowed = stub.request(probe.method, probe.path, headers=basic(f"only-{needed}"))
            if allowed.status_code != 200 or allowed.text != "reached":
                failures.append(f"{probe}: user with only {needed} gave {allowed.status_code}")
    assert not failures, "\n".join(failures)


def test_each_permission_guards_at_least_one_route(secured: tuple[Starlette, Starlette]) -> None:
    app, _ = secured
    permission_for = policy_of(app).permission_for
    used = {permission_for(probe.method, probe.path) for probe in probes(app.routes)}
    # "network" guards the DICOM/peers/transfers families, present once those modules are in.
    assert {"read", "metrics", "upload", "edit", "jobs", "admin"} <= used


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [
        ("GET", "/patients", "read"),
        ("GET", "/instances/abc/preview", "read"),
        ("POST", "/instances", "upload"),
        ("POST", "/dicom-web/studies", "upload"),
        ("GET", "/dicom-web/studies/1.2/series", "read"),
        ("POST", "/dicom-web/servers/x/stow", "network"),
        ("POST", "/modalities/pacs/store", "network"),
        ("GET", "/modalities", "network"),
        ("POST", "/queries/1/retrieve", "network"),
        ("POST", "/studies/abc/modify", "edit"),
        ("DELETE", "/studies/abc", "edit"),
        ("PUT", "/patients/abc/protected", "edit"),
        ("POST", "/jobs/abc/cancel", "jobs"),
        ("GET", "/jobs/abc", "read"),
        ("GET", "/tools/metrics-prometheus", "metrics"),
        ("PUT", "/tools/metrics", "admin"),
        ("PUT", "/tools/log-level", "admin"),
        ("POST", "/tools/execute-script", "admin"),
        ("GET", "/ui/viewer/index.html", "read"),
        ("GET", "/browse", "read"),
        ("POST", "/some/route/nobody/classified", "admin"),
        ("GET", "/some/route/nobody/classified", "admin"),
    ],
)
def test_route_families(method: str, path: str, permission: str) -> None:
    assert required_permission(method, path) == permission
