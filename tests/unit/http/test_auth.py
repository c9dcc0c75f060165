"""Authentication semantics (Orthanc's defaults), bearer tokens, remote access, reloading."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from obelisk.config import load_settings
from obelisk.errors import ConfigurationError
from obelisk.http.app import create_app
from obelisk.http.auth import access_policy
from obelisk.services.permissions import Permissions
from tests.conftest import make_services
from tests.unit.http.test_auth_routes import basic


@contextmanager
def app_client(client_host: str = "127.0.0.1", **overrides: Any) -> Iterator[TestClient]:
    services = make_services(**overrides)
    try:
        with TestClient(
            create_app(services), client=(client_host, 50000), raise_server_exceptions=False
        ) as client:
            yield client
    finally:
        services.close()


def test_authentication_follows_remote_access_when_not_configured() -> None:
    # Orthanc >= 1.5.8: remote access without "AuthenticationEnabled" turns authentication on,
    # and with no user declared registers orthanc:orthanc.
    with app_client(RemoteAccessAllowed=True) as client:
        refused = client.get("/system")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Basic realm="Orthanc Secure Area"'
        assert refused.json()["OrthancStatus"] == 29
        assert client.get("/system", auth=("orthanc", "orthanc")).status_code == 200
    with app_client(RemoteAccessAllowed=True, RegisteredUsers={"alice": "pw"}) as client:
        assert client.get("/system", auth=("orthanc", "orthanc")).status_code == 401
        assert client.get("/system", auth=("alice", "pw")).status_code == 200
        assert client.get("/system", auth=("alice", "wrong")).status_code == 401


def test_explicit_settings_win_over_the_default() -> None:
    with app_client(RemoteAccessAllowed=True, AuthenticationEnabled=False) as client:
        assert client.get("/system").status_code == 200
    with app_client() as client:  # loopback only, no authentication: Orthanc's default
        assert client.get("/system").status_code == 200
    with app_client(AuthenticationEnabled=True, RegisteredUsers={"a": "b"}) as client:
        assert client.get("/system").status_code == 401


def test_remote_clients_are_refused_unless_remote_access_is_allowed() -> None:
    with app_client(client_host="192.0.2.7") as client:
        refused = client.get("/system")
        assert refused.status_code == 403
        assert "RemoteAccessAllowed" in refused.json()["Details"]
    with app_client(
        client_host="192.0.2.7", RemoteAccessAllowed=True, RegisteredUsers={"a": "b"}
    ) as client:
        assert client.get("/system", auth=("a", "b")).status_code == 200


def test_bearer_tokens_name_a_principal_with_its_groups(tmp_path: Path) -> None:
    permissions = tmp_path / "permissions.json"
    permissions.write_text(json.dumps({"Users": {"scraper": ["read-only"]}}))
    with app_client(
        AuthenticationEnabled=True,
        Obelisk={"BearerTokens": {"scraper": "t0ken"}, "PermissionsFile": str(permissions)},
    ) as client:
        bearer = {"Authorization": "Bearer t0ken"}
        assert client.get("/tools/metrics-prometheus", headers=bearer).status_code == 200
        assert client.get("/patients", headers=bearer).json() == []
        denied = client.post("/instances", content=b"x", headers=bearer)
        assert denied.status_code == 403
        assert denied.json()["Details"].startswith('Missing permission "upload"')
        assert 'user "scraper" (groups: read-only)' in denied.json()["Details"]
        wrong = client.get("/patients", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


def test_without_a_permissions_file_every_user_is_an_administrator() -> None:
    with app_client(AuthenticationEnabled=True, RegisteredUsers={"a": "b"}) as client:
        assert client.put("/tools/log-level", content="default", auth=("a", "b")).status_code == 200


def test_permissions_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    permissions = tmp_path / "permissions.json"
    permissions.write_text('{"Users": {"alice": "read-only"}}  // comments allowed')
    with app_client(
        AuthenticationEnabled=True,
        RegisteredUsers={"alice": "pw"},
        Obelisk={"PermissionsFile": str(permissions)},
    ) as client:
        assert client.delete("/changes", headers=basic("alice")).status_code == 403
        permissions.write_text('{"Users": {"alice": ["operator"]}}')
        _bump_mtime(permissions)
        time.sleep(1.05)  # the file is checked at most once a second
        assert client.delete("/changes", headers=basic("alice")).status_code == 200
        permissions.write_text("{not json")  # a broken edit keeps the last good table
        _bump_mtime(permissions)
        time.sleep(1.05)
        assert client.delete("/changes", headers=basic("alice")).status_code == 200


def test_a_bad_permissions_file_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Groups": {"g": ["fly"]}}))
    with pytest.raises(ConfigurationError, match="unknown permissions"):
        Permissions(bad)
    bad.write_text(json.dumps({"Users": {"bob": ["no-such-group"]}}))
    with pytest.raises(ConfigurationError, match="unknown groups"):
        Permissions(bad)


def test_unlisted_principals_get_the_default_groups(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"Users": {"root": ["admin"]}, "DefaultGroups": ["read-only"]}))
    table = Permissions(path).table()
    assert table.permissions_of("root") >= {"admin", "network"}
    assert table.permissions_of("anyone") == {"read", "metrics"}


def test_configured_prefixes_keep_their_family() -> None:
    settings = load_settings(
        None, {"DicomWeb": {"Root": "/dw/"}, "Obelisk": {"StaticDocrootPath": "/site"}}
    )
    permission_for = access_policy(settings).permission_for
    assert permission_for("GET", "/dw/studies/1.2/series") == "read"
    assert permission_for("POST", "/dw/studies") == "upload"
    assert permission_for("POST", "/dw/servers/other/stow") == "network"
    assert permission_for("GET", "/site/index.html") == "read"
    assert permission_for("PUT", "/site/index.html") == "admin"


def test_execute_script_is_refused_while_lua_is_disabled() -> None:
    with app_client() as client:
        refused = client.post("/tools/execute-script", content="print(42)")
        assert refused.status_code == 403
        assert "ExecuteLuaEnabled" in refused.json()["Details"]


def _bump_mtime(path: Path) -> None:
    # Some file systems keep mtime at a coarse granularity: make the change visible.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
