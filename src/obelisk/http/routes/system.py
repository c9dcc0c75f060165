"""``/system``, ``/statistics``, ``/changes`` and ``/exports``."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from obelisk import __version__
from obelisk.errors import ParameterOutOfRange
from obelisk.http.params import integer, services
from obelisk.http.render import change_json, export_json, mb
from obelisk.http.responses import OrthancJSON, empty

#: The Orthanc version whose REST API Obelisk implements (clients test it for features).
ORTHANC_API_VERSION = "1.10.1"


async def system(request: Request) -> Response:
    settings = services(request).settings
    return OrthancJSON(
        {
            "ApiVersion": 16,
            "CheckRevisions": bool(settings["CheckRevisions"]),
            "DatabaseBackendPlugin": None,
            "DatabaseVersion": 6,
            "DicomAet": settings["DicomAet"],
            "DicomPort": settings["DicomPort"],
            "HttpPort": settings["HttpPort"],
            "IsHttpServerSecure": bool(settings["SslEnabled"]),
            "Name": settings["Name"],
            "PluginsEnabled": False,
            "StorageAreaPlugin": None,
            "Version": ORTHANC_API_VERSION,
            "ObeliskVersion": __version__,
        }
    )


async def statistics(request: Request) -> Response:
    totals = await run_in_threadpool(services(request).index.totals)
    return OrthancJSON(
        {
            "CountInstances": totals.instances,
            "CountPatients": totals.patients,
            "CountSeries": totals.series,
            "CountStudies": totals.studies,
            "TotalDiskSize": str(totals.compressed_size),
            "TotalDiskSizeMB": mb(totals.compressed_size),
            "TotalUncompressedSize": str(totals.uncompressed_size),
            "TotalUncompressedSizeMB": mb(totals.uncompressed_size),
        }
    )


async def changes(request: Request) -> Response:
    log = services(request).changes
    if "last" in request.query_params:
        page = await run_in_threadpool(log.last)
    else:
        since = integer(request, "since", 0) or 0
        limit = min(_non_negative(integer(request, "limit", 100)), 10000)
        page = await run_in_threadpool(log.changes, since, limit)
    return OrthancJSON(
        {
            "Changes": [change_json(c) for c in page.changes],
            "Done": page.done,
            "Last": page.last,
        }
    )


def _non_negative(value: int | None) -> int:
    if value is None or value < 0:
        raise ParameterOutOfRange('"limit" must be a non-negative integer')
    return value


async def clear_changes(request: Request) -> Response:
    await run_in_threadpool(services(request).changes.clear)
    return empty()


async def exports(request: Request) -> Response:
    since = integer(request, "since", 0) or 0
    limit = min(_non_negative(integer(request, "limit", 100)), 10000)
    found, last, done = await run_in_threadpool(services(request).changes.exports, since, limit)
    return OrthancJSON({"Exports": [export_json(e) for e in found], "Done": done, "Last": last})


async def clear_exports(request: Request) -> Response:
    await run_in_threadpool(services(request).changes.clear_exports)
    return empty()


routes = [
    Route("/system", system, methods=["GET"]),
    Route("/statistics", statistics, methods=["GET"]),
    Route("/changes", changes, methods=["GET"]),
    Route("/changes", clear_changes, methods=["DELETE"]),
    Route("/exports", exports, methods=["GET"]),
    Route("/exports", clear_exports, methods=["DELETE"]),
]
