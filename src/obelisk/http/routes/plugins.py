"""``/plugins``: what Orthanc clients look for to discover optional features.

Obelisk has no plugins, but DICOMweb, which Orthanc gets from its DICOMweb plugin, is built in.
Clients (Orthanc Explorer 2, scripts) test ``GET /plugins`` or ``/plugins/dicom-web`` before using
``/dicom-web``, so the built-in server is described the way Orthanc describes the plugin.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from obelisk.dicomweb.options import DicomWebOptions
from obelisk.errors import UnknownResource
from obelisk.http.params import services
from obelisk.http.responses import OrthancJSON

#: The Orthanc DICOMweb plugin whose API the built-in DICOMweb server follows (Debian 12's).
DICOMWEB_PLUGIN_VERSION = "1.7"
#: Orthanc's answer when no plugin extends its explorer (``explorer.js`` is always listed).
_EXPLORER_JS = "// Extensions to Orthanc Explorer by the registered plugins\n"


def _described(request: Request) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    if DicomWebOptions.from_settings(services(request).settings).enable:
        found["dicom-web"] = {
            "Description": "Implementation of DICOMweb (QIDO-RS, STOW-RS and WADO-RS) and "
            "WADO-URI (built into Obelisk).",
            "ExtendsOrthancExplorer": False,
            "ID": "dicom-web",
            "Version": DICOMWEB_PLUGIN_VERSION,
        }
    return found


async def plugin_list(request: Request) -> Response:
    return OrthancJSON(["explorer.js", *_described(request)])


async def plugin(request: Request) -> Response:
    name = request.path_params["id"]
    found = _described(request).get(name)
    if found is None:
        raise UnknownResource(f"Unknown plugin: {name}")
    return OrthancJSON(found)


async def explorer_js(request: Request) -> Response:
    return Response(_EXPLORER_JS, media_type="application/javascript")


routes = [
    Route("/plugins", plugin_list, methods=["GET"]),
    Route("/plugins/explorer.js", explorer_js, methods=["GET"]),
    Route("/plugins/{id}", plugin, methods=["GET"]),
]
