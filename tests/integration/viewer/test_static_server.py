"""Docroot and viewer through the real HTTP server: raw ``..`` paths never leave the folder."""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from obelisk.http.routes.static import default_viewer_directory, viewer_index
from tests.integration.server_process import ObeliskProcess


def _raw_get(server: ObeliskProcess, path: str) -> tuple[int, bytes]:
    """Sends ``path`` byte for byte (httpx would remove the dot segments)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_docroot_over_http(obelisk_factory: Callable[..., ObeliskProcess], tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("TOP-SECRET-CONTENT")
    docroot = tmp_path / "site"
    docroot.mkdir()
    (docroot / "page.html").write_text("<h1>hello</h1>")
    config = {"Obelisk": {"StaticDocroot": str(docroot), "StaticDocrootPath": "/site"}}
    with obelisk_factory(config) as server:
        answer = httpx.get(server.url + "/site/page.html")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        for path in (
            "/site/../secret.txt",
            "/site/%2e%2e/secret.txt",
            "/site/..%2f..%2fsecret.txt",
            "/site/.%2e/secret.txt",
            "/ui/viewer/../../secret.txt",
        ):
            status, body = _raw_get(server, path)
            assert b"TOP-SECRET-CONTENT" not in body, path
            assert status == 403, (path, status)


def test_installed_viewer_is_relocatable() -> None:
    """scripts/install-viewer left no URL that assumes OHIF sits at the site root."""
    folder = default_viewer_directory()
    if not (folder / "index.html").is_file():
        pytest.skip("OHIF viewer not installed: run scripts/install-viewer")
    index = viewer_index((folder / "index.html").read_text(), "/ui/viewer")
    assert re.findall(r'(?:src|href)="/(?!ui/viewer/)', index) == []
    assert 'window.PUBLIC_URL="/ui/viewer/"' in index
    for bundle in folder.glob("*.js"):
        assert '__webpack_require__.p = "/";' not in bundle.read_text(errors="replace"), bundle
    for sheet in folder.glob("*.css"):
        assert "url(/" not in sheet.read_text(), sheet
