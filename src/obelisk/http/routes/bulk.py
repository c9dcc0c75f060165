"""Bulk tools: ``/tools/bulk-delete``, ``bulk-content``, ``reconstruct``, ``invalidate-tags``.

Orthanc 1.10.1 answers the three actions with an empty ``text/plain`` body, and reads their JSON
fields with its own messages (``List of strings expected in field: Resources``, 400 "Bad file
format"); both are kept.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from obelisk.core.levels import Level
from obelisk.errors import BadFileFormat, ParameterOutOfRange
from obelisk.http.params import json_object, services
from obelisk.http.render import resource_json
from obelisk.http.responses import OrthancJSON, empty
from obelisk.services.bulk import (
    Described,
    delete_resources,
    describe_resources,
    reconstruct_all,
)

#: Orthanc's plural spellings of a level, accepted as well in ``Level``.
_PLURAL_LEVELS = {"PATIENTS": Level.PATIENT, "STUDIES": Level.STUDY, "INSTANCES": Level.INSTANCE}


def _resources_field(body: dict[str, Any]) -> list[str]:
    value = body.get("Resources")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadFileFormat("List of strings expected in field: Resources")
    return value


def _boolean_field(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise BadFileFormat(f"Boolean value expected in field: {key}")
    return value


def _level_field(body: dict[str, Any]) -> Level | None:
    if "Level" not in body:
        return None
    text = body["Level"]
    if not isinstance(text, str):
        raise BadFileFormat("String value expected in field: Level")
    try:
        return _PLURAL_LEVELS.get(text.strip().upper()) or Level.parse(text)
    except KeyError as exc:
        raise ParameterOutOfRange(f"Unknown resource level: {text}") from exc


def _tag_style(body: dict[str, Any]) -> str:
    """Orthanc's order: ``Simplify``, then ``Short``, then ``Full``; keywords by default."""
    simplify = _boolean_field(body, "Simplify", False)
    short = _boolean_field(body, "Short", False)
    full = _boolean_field(body, "Full", False)
    if simplify:
        return "human"
    return "short" if short else "full" if full else "human"


def _described_json(described: Described, style: str) -> dict[str, Any]:
    body = resource_json(described.view, style)
    if described.metadata is not None:
        body["Metadata"] = described.metadata
    return body


async def bulk_delete(request: Request) -> Response:
    public_ids = _resources_field(await json_object(request))
    await run_in_threadpool(delete_resources, services(request).resources, public_ids)
    return empty()


async def bulk_content(request: Request) -> Response:
    body = await json_object(request)
    public_ids = _resources_field(body)
    level = _level_field(body)
    with_metadata = _boolean_field(body, "Metadata", True)
    style = _tag_style(body)
    svc = services(request)
    found = await run_in_threadpool(
        lambda: describe_resources(
            svc.resources, svc.annotations, public_ids, level=level, with_metadata=with_metadata
        )
    )
    return OrthancJSON([_described_json(described, style) for described in found])


async def reconstruct(request: Request) -> Response:
    """Every stored file read again; the body is ignored, as Orthanc 1.10.1 does."""
    await run_in_threadpool(reconstruct_all, services(request).resources)
    return empty()


async def invalidate_tags(request: Request) -> Response:
    """Orthanc drops its DICOM-as-JSON attachments here. Obelisk stores none (tags are read
    from the DICOM file on each request, and no client may set that attachment), so there is
    nothing to invalidate."""
    return empty()


routes = [
    Route("/tools/bulk-delete", bulk_delete, methods=["POST"]),
    Route("/tools/bulk-content", bulk_content, methods=["POST"]),
    Route("/tools/reconstruct", reconstruct, methods=["POST"]),
    Route("/tools/invalidate-tags", invalidate_tags, methods=["POST"]),
]
