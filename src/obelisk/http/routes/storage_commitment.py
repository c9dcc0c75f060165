"""``/modalities/{id}/storage-commitment`` and ``/storage-commitment/{id}``: storage commitment
requests sent to modalities and the reports they answer (Orthanc 1.10.1)."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from obelisk.errors import BadFileFormat, ErrorCode, ObeliskError
from obelisk.http.params import services
from obelisk.http.responses import OrthancJSON, ok
from obelisk.services.storage_commitment import (
    Failure,
    Reference,
    Report,
    StorageCommitmentService,
    describe,
)


def commitment(request: Request) -> StorageCommitmentService:
    found = services(request).storage_commitment
    if found is None:
        raise ObeliskError("DICOM networking is not set up", code=ErrorCode.NotImplemented)
    return found


async def request_commitment(request: Request) -> Response:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise BadFileFormat("Must provide a JSON object with a list of resources")
    name = request.path_params["name"]
    uid = await run_in_threadpool(commitment(request).request, name, body)
    return OrthancJSON({"ID": uid, "Path": f"/storage-commitment/{uid}"})


async def get_report(request: Request) -> Response:
    report = commitment(request).report(request.path_params["uid"])
    return OrthancJSON(report_json(report))


async def remove(request: Request) -> Response:
    await run_in_threadpool(commitment(request).remove, request.path_params["uid"])
    return ok()


def report_json(report: Report) -> dict[str, Any]:
    """Orthanc's report: ``Success`` and ``Failures`` only once the report has arrived."""
    answer: dict[str, Any] = {"RemoteAET": report.remote_aet, "Status": report.status.value}
    if report.complete:
        answer["Success"] = [_reference_json(r) for r in report.success]
        answer["Failures"] = [_failure_json(f) for f in report.failures]
    return answer


def _reference_json(reference: Reference) -> dict[str, Any]:
    return {
        "SOPClassUID": reference.sop_class_uid,
        "SOPInstanceUID": reference.sop_instance_uid,
    }


def _failure_json(failure: Failure) -> dict[str, Any]:
    return {
        **_reference_json(failure.reference),
        "Description": describe(failure.reason),
        "FailureReason": failure.reason,
    }


routes = [
    Route("/modalities/{name}/storage-commitment", request_commitment, methods=["POST"]),
    Route("/storage-commitment/{uid}", get_report, methods=["GET"]),
    Route("/storage-commitment/{uid}/remove", remove, methods=["POST"]),
]
