"""The DICOM ``/tools``: C-ECHO to an unregistered modality, and the C-STORE SCP's runtime
settings (accepted transfer syntaxes, unknown SOP classes), read by each new association."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from obelisk.errors import BadFileFormat
from obelisk.http.responses import OrthancJSON, ok
from obelisk.http.routes.modalities import network, strict_json


async def dicom_echo(request: Request) -> Response:
    body = await strict_json(request)
    await run_in_threadpool(network(request).echo_unregistered, body)
    return ok()


async def get_accepted_syntaxes(request: Request) -> Response:
    return OrthancJSON(network(request).storage_acceptance.syntaxes())


async def put_accepted_syntaxes(request: Request) -> Response:
    """A JSON list of UIDs or patterns, one JSON string, or one plain-text pattern."""
    raw = (await request.body()).decode("utf-8", "replace").strip()
    try:
        body: Any = json.loads(raw)
    except json.JSONDecodeError:
        body = raw
    patterns = [body] if isinstance(body, str) else body
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise BadFileFormat("Expected a JSON list of transfer syntax UIDs (wildcards allowed)")
    return OrthancJSON(network(request).storage_acceptance.set_syntaxes(patterns))


async def get_unknown_sop_class(request: Request) -> Response:
    accepted = network(request).storage_acceptance.unknown_sop_classes
    return PlainTextResponse("1" if accepted else "0")


async def put_unknown_sop_class(request: Request) -> Response:
    text = (await request.body()).decode("utf-8", "replace").strip().lower()
    if text not in ("1", "0", "true", "false"):
        raise BadFileFormat("Boolean value expected")
    network(request).storage_acceptance.unknown_sop_classes = text in ("1", "true")
    return PlainTextResponse("")


routes = [
    Route("/tools/dicom-echo", dicom_echo, methods=["POST"]),
    Route("/tools/accepted-transfer-syntaxes", get_accepted_syntaxes, methods=["GET"]),
    Route("/tools/accepted-transfer-syntaxes", put_accepted_syntaxes, methods=["PUT"]),
    Route("/tools/unknown-sop-class-accepted", get_unknown_sop_class, methods=["GET"]),
    Route("/tools/unknown-sop-class-accepted", put_unknown_sop_class, methods=["PUT"]),
]
