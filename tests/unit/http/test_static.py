"""The static docroot, the viewer mounts and CORS: files served, traversal refused, SPA fallback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from obelisk.errors import ConfigurationError, Forbidden
from obelisk.http.app import create_app
from obelisk.http.routes.static import app_config, safe_file, viewer_index
from tests.conftest import client_for, make_services

OHIF_INDEX = (
    '<html><head><script>window.PUBLIC_URL="/"</script><link rel="manifest" href="/manifest.json">'
    '<script src="/app-config.js"></script><script defer src="/app.bundle.1.js"></script>'
    "</head><body><div id=root></div></body></html>"
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """docroot/ (hello.txt, sub/index.html, a link out), viewer/ (a fake OHIF), secret.txt."""
    (tmp_path / "secret.txt").write_text("TOP-SECRET-CONTENT")
    docroot = tmp_path / "docroot"
    (docroot / "sub").mkdir(parents=True)
    (docroot / "hello.txt").write_text("hello")
    (docroot / "sub" / "index.html").write_text("<p>sub</p>")
    (docroot / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (docroot / "inside.txt").symlink_to(docroot / "hello.txt")
    viewer = tmp_path / "viewer"
    viewer.mkdir()
    (viewer / "index.html").write_text(OHIF_INDEX)
    (viewer / "app.bundle.1.js").write_text("console.log(1)")
    (viewer / "app-config.js").write_text("window.config = {upstream: true}")
    return tmp_path


def _client(**obelisk: Any) -> Iterator[TestClient]:
    yield from client_for(Obelisk=obelisk)


@pytest.fixture
def client(tree: Path) -> Iterator[TestClient]:
    yield from _client(StaticDocroot=str(tree / "docroot"), ViewerDirectory=str(tree / "viewer"))


@pytest.mark.parametrize(
    "relative",
    ["..", "../secret.txt", "sub/../../secret.txt", "/etc/passwd", "sub\\..\\x", "C:/x", "a\x00b"],
)
def test_safe_file_refuses_leaving_the_root(tree: Path, relative: str) -> None:
    with pytest.raises(Forbidden):
        safe_file(tree / "docroot", relative)


def test_safe_file_follows_links_only_inside(tree: Path) -> None:
    root = tree / "docroot"
    assert safe_file(root, "inside.txt") == (root / "hello.txt").resolve()
    assert safe_file(root, "sub") == (root / "sub" / "index.html").resolve()
    assert safe_file(root, "missing.txt") is None
    with pytest.raises(Forbidden):
        safe_file(root, "escape.txt")


def test_docroot_serves_files(client: TestClient) -> None:
    answer = client.get("/static/hello.txt")
    assert answer.status_code == 200 and answer.text == "hello"
    assert answer.headers["content-type"].startswith("text/plain")
    assert client.get("/static/sub/").text == "<p>sub</p>"
    assert client.get("/static/missing.txt").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/sub/%2e%2e/%2e%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/escape.txt",
        "/ui/viewer/%2e%2e/%2e%2e/secret.txt",
        "/browse/..%2f..%2fsecret.txt",
    ],
)
def test_traversal_is_refused(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 403
    assert "TOP-SECRET-CONTENT" not in answer.text


def test_absolute_paths_stay_inside_the_root(client: TestClient) -> None:
    # "//" is collapsed before routing, so an absolute path names a file below the docroot
    for path in ("/static/%2fetc%2fpasswd", "/static//etc/passwd", "/ui/viewer/%2fetc%2fpasswd"):
        assert "root:x:0:0" not in client.get(path).text
    assert client.get("/static/%2fetc%2fpasswd").status_code == 404


def test_docroot_cannot_hide_the_api(tree: Path) -> None:
    services = make_services(Obelisk={"StaticDocroot": str(tree), "StaticDocrootPath": "/"})
    try:
        with pytest.raises(ConfigurationError):
            create_app(services)
    finally:
        services.close()


def test_docroot_is_off_by_default() -> None:
    for client in _client(ViewerEnabled=False):
        assert client.get("/static/hello.txt").status_code == 404


def test_viewer_index_and_spa_fallback(client: TestClient) -> None:
    redirect = client.get("/ui/viewer", follow_redirects=False)
    assert redirect.status_code == 301 and redirect.headers["location"] == "/ui/viewer/"
    index = client.get("/ui/viewer/")
    assert index.headers["content-type"].startswith("text/html")
    assert 'window.PUBLIC_URL="/ui/viewer/"' in index.text
    assert 'src="/ui/viewer/app.bundle.1.js"' in index.text
    assert 'href="/ui/viewer/manifest.json"' in index.text
    assert client.get("/ui/viewer/viewer?StudyInstanceUIDs=1.2.3").text == index.text
    assert (
        client.get("/ui/viewer/app.bundle.1.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert 'window.PUBLIC_URL="/browse/"' in client.get("/browse/").text


def test_app_config_points_at_this_server(client: TestClient) -> None:
    config = client.get("/ui/viewer/app-config.js")
    assert config.headers["content-type"].startswith("text/javascript")
    assert '"routerBasename": "/ui/viewer"' in config.text
    assert 'window.location.origin + "/dicom-web"' in config.text
    assert "upstream" not in config.text
    assert '"routerBasename": "/browse"' in client.get("/browse/app-config.js").text


def test_app_config_follows_the_dicomweb_root() -> None:
    assert 'window.location.origin + "/dw"' in app_config("/ui/viewer", "/dw")
    assert viewer_index('src="/a.js"', "/browse") == 'src="/browse/a.js"'


def test_server_starts_without_the_viewer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="obelisk.http.static"):
        for client in _client(ViewerDirectory=str(tmp_path / "nothing")):
            assert client.get("/ui/viewer/").status_code == 404
            assert client.get("/system").status_code == 200
    assert "OHIF viewer not installed" in caplog.text


def test_cors_is_off_by_default(client: TestClient) -> None:
    answer = client.get("/system", headers={"Origin": "http://viewer.example"})
    assert "access-control-allow-origin" not in answer.headers


def test_cors_allows_the_listed_origins(tree: Path) -> None:
    for client in _client(CorsAllowedOrigins=["http://viewer.example"], ViewerEnabled=False):
        preflight = client.options(
            "/dicom-web/studies",
            headers={
                "Origin": "http://viewer.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization, accept",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://viewer.example"
        simple = client.get("/system", headers={"Origin": "http://viewer.example"})
        assert simple.headers["access-control-allow-origin"] == "http://viewer.example"
        other = client.get("/system", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
