"""Static files: the configured docroot and the bundled OHIF viewer (docs/viewer-and-pixels.md).

* ``Obelisk.StaticDocroot`` (a folder, off when empty) is served under
  ``Obelisk.StaticDocrootPath`` (``/static``); a folder answers its ``index.html``.
* The OHIF viewer installed by ``scripts/install-viewer`` (``Obelisk.ViewerDirectory``, default
  ``<repo>/.viewer/ohif``) is served under ``/ui/viewer`` and ``/browse``, as a single-page app:
  a path that is not a file answers ``index.html``. ``index.html`` gets the mount as its public
  URL and ``app-config.js`` is generated, pointing OHIF at this server's DICOMweb root on the same
  origin. When the viewer is not installed, the server says so once in its log and goes on.

Every file path goes through :func:`safe_file`: ``..``, ``.``, backslashes, NUL and absolute
paths are refused (403), and so is a symlink that resolves outside the folder.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

import obelisk
from obelisk.config import Settings
from obelisk.dicomweb.options import DicomWebOptions
from obelisk.errors import ConfigurationError, Forbidden, UnknownResource

log = logging.getLogger("obelisk.http.static")

VIEWER_MOUNTS = ("/ui/viewer", "/browse")
_NO_CACHE = {"cache-control": "no-cache"}
_MEDIA_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}


def safe_file(root: Path, relative: str) -> Path | None:
    """The regular file ``relative`` names inside ``root``; None if there is none.

    Raises :class:`Forbidden` for any attempt to leave ``root`` (``..``, an absolute path, a
    symlink pointing outside). ``relative`` is the already percent-decoded URL path, so
    ``%2e%2e`` arrives here as ``..``.
    """
    if relative.startswith(("/", "\\")) or "\x00" in relative or "\\" in relative:
        raise Forbidden("Path outside of the served folder")
    parts = [part for part in relative.split("/") if part]
    if any(part in (".", "..") or (len(part) > 1 and part[1] == ":") for part in parts):
        raise Forbidden("Path outside of the served folder")
    base = root.resolve()
    candidate = base.joinpath(*parts).resolve()
    if candidate != base and not candidate.is_relative_to(base):
        raise Forbidden("Path outside of the served folder")
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


def _media_type(path: Path) -> str:
    guessed = _MEDIA_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    return guessed or "application/octet-stream"


def _file_response(path: Path) -> Response:
    return FileResponse(path, media_type=_media_type(path))


# --- docroot ------------------------------------------------------------------------------------


def docroot_routes(folder: Path, mount: str) -> list[BaseRoute]:
    async def serve(request: Request) -> Response:
        found = safe_file(folder, request.path_params.get("path", ""))
        if found is None:
            raise UnknownResource(f"No file {request.url.path}")
        return _file_response(found)

    return [
        Route(mount, serve, methods=["GET", "HEAD"]),
        Route(mount + "/{path:path}", serve, methods=["GET", "HEAD"]),
    ]


# --- the OHIF viewer ----------------------------------------------------------------------------


def default_viewer_directory() -> Path:
    """``.viewer/ohif`` at the root of the source tree (where scripts/install-viewer puts it)."""
    return Path(obelisk.__file__).resolve().parents[2] / ".viewer" / "ohif"


def app_config(mount: str, dicomweb_root: str) -> str:
    """OHIF's ``window.config``: one DICOMweb data source, this server, same origin."""
    source = {
        "friendlyName": "Obelisk",
        "name": "obelisk",
        "qidoSupportsIncludeField": True,
        "imageRendering": "wadors",
        "thumbnailRendering": "wadors",
        "enableStudyLazyLoad": True,
        "supportsFuzzyMatching": True,
        "supportsWildcard": True,
        "omitQuotationForMultipartRequest": True,
        "dicomUploadEnabled": True,
        "bulkDataURI": {"enabled": True},
    }
    config: dict[str, Any] = {
        "routerBasename": mount,
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "investigationalUseDialog": {"option": "never"},
        "maxNumRequests": {"interaction": 100, "thumbnail": 75, "prefetch": 25},
        "defaultDataSourceName": "obelisk",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "obelisk",
                "configuration": source,
            }
        ],
    }
    root = json.dumps(dicomweb_root)
    return (
        "// Generated by Obelisk: OHIF reads this server's DICOMweb on the page's own origin.\n"
        f"window.config = {json.dumps(config, indent=2)};\n"
        "(function (source) {\n"
        f"  var root = window.location.origin + {root};\n"
        "  source.qidoRoot = root; source.wadoRoot = root; source.wadoUriRoot = root;\n"
        "})(window.config.dataSources[0].configuration);\n"
    )


def viewer_index(index_html: str, mount: str) -> str:
    """OHIF's built ``index.html`` assumes the site root: point its URLs at ``mount``."""
    base = mount.rstrip("/") + "/"
    return (
        index_html.replace('window.PUBLIC_URL="/"', f"window.PUBLIC_URL={json.dumps(base)}")
        .replace('href="/', f'href="{base}')
        .replace('src="/', f'src="{base}')
    )


@dataclass
class Viewer:
    folder: Path
    dicomweb_root: str

    def routes(self, mount: str) -> list[BaseRoute]:
        index = viewer_index((self.folder / "index.html").read_text(encoding="utf-8"), mount)
        config = app_config(mount, self.dicomweb_root)

        async def redirect(request: Request) -> Response:
            return RedirectResponse(mount + "/", status_code=301)

        async def serve(request: Request) -> Response:
            relative = request.path_params.get("path", "")
            if relative == "app-config.js":
                return Response(config, media_type="text/javascript")
            found = safe_file(self.folder, relative)
            if found is None or found.name == "index.html":
                # single-page app: unknown paths are the app's own routes
                return Response(index, media_type="text/html", headers=_NO_CACHE)
            return _file_response(found)

        return [
            Route(mount, redirect, methods=["GET", "HEAD"]),
            Route(mount + "/{path:path}", serve, methods=["GET", "HEAD"]),
        ]


def static_routes(settings: Settings) -> list[BaseRoute]:
    """The docroot and viewer routes the settings ask for (none by default but the viewer)."""
    options = settings.obelisk
    routes: list[BaseRoute] = []
    if options.get("StaticDocroot"):
        folder = Path(options["StaticDocroot"])
        if not folder.is_dir():
            log.warning("StaticDocroot %s is not a folder: not served", folder)
        else:
            mount = "/" + str(options.get("StaticDocrootPath") or "/static").strip("/")
            if mount == "/":  # it would hide the whole REST API
                raise ConfigurationError('"Obelisk.StaticDocrootPath" cannot be "/"')
            routes += docroot_routes(folder, mount)
    if not options.get("ViewerEnabled", True):
        return routes
    folder = Path(options.get("ViewerDirectory") or default_viewer_directory())
    if not (folder / "index.html").is_file():
        log.warning(
            "OHIF viewer not installed in %s (run scripts/install-viewer): /ui/viewer disabled",
            folder,
        )
        return routes
    dicomweb = DicomWebOptions.from_settings(settings)
    viewer = Viewer(folder, dicomweb.root)
    for mount in VIEWER_MOUNTS:
        routes += viewer.routes(mount)
    log.info("OHIF viewer from %s served at %s", folder, ", ".join(VIEWER_MOUNTS))
    return routes
