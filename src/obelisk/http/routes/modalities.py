"""``/modalities``: remote modalities (configuration at runtime) and the DICOM client commands."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from obelisk.core.levels import Level
from obelisk.errors import BadFileFormat, BadJson, BadRequest, ErrorCode, ObeliskError
from obelisk.http.jobs_support import job_response
from obelisk.http.params import flag, json_body, services
from obelisk.http.responses import OrthancJSON, ok
from obelisk.services.dicom_network import DicomNetwork
from obelisk.services.modalities import modality_json

_OPERATIONS = [
    "configuration",
    "echo",
    "find",
    "find-instance",
    "find-patient",
    "find-series",
    "find-study",
    "find-worklist",
    "get",
    "move",
    "query",
    "storage-commitment",
    "store",
    "store-straight",
]


def network(request: Request) -> DicomNetwork:
    found = services(request).network
    if found is None:
        raise ObeliskError("DICOM networking is not set up", code=ErrorCode.NotImplemented)
    return found


async def body_object(request: Request, *, plain_key: str | None = None) -> dict[str, Any]:
    """A JSON object; an empty body is ``{}``. With ``plain_key``, a bare JSON value or a plain
    string (as Orthanc accepts for ``/store`` resources or a retrieve's target AET) is put under
    that key."""
    raw = (await request.body()).strip()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if plain_key is None:
            raise BadJson("Cannot parse the JSON body of the request", details=str(exc)) from exc
        return {plain_key: raw.decode("utf-8", "replace")}
    if isinstance(body, dict):
        return body
    if plain_key is None:
        raise BadRequest("The body of the request must be a JSON object")
    return {plain_key: body}


async def strict_json(request: Request) -> Any:
    """A JSON body, required (Orthanc: ``Cannot parse the JSON body``, status 15)."""
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadFileFormat("Cannot parse the JSON body", details=str(exc)) from exc


async def list_modalities(request: Request) -> Response:
    found = await run_in_threadpool(network(request).registry.all)
    if flag(request, "expand"):
        return OrthancJSON({name: modality_json(m) for name, m in found.items()})
    return OrthancJSON(list(found))


async def modality_operations(request: Request) -> Response:
    await run_in_threadpool(network(request).registry.get, request.path_params["name"])
    return OrthancJSON(_OPERATIONS)


async def configuration(request: Request) -> Response:
    found = await run_in_threadpool(network(request).registry.get, request.path_params["name"])
    return OrthancJSON(modality_json(found))


async def put_modality(request: Request) -> Response:
    body = await json_body(request)
    await run_in_threadpool(network(request).registry.put, request.path_params["name"], body)
    return ok()


async def delete_modality(request: Request) -> Response:
    await run_in_threadpool(network(request).registry.delete, request.path_params["name"])
    return ok()


async def echo(request: Request) -> Response:
    body = await body_object(request)
    await run_in_threadpool(network(request).echo, request.path_params["name"], body)
    return ok()


async def store(request: Request) -> Response:
    body = await body_object(request, plain_key="Resources")
    name = request.path_params["name"]
    job = await run_in_threadpool(network(request).store_job, name, body)
    return await job_response(request, job, body)


async def store_straight(request: Request) -> Response:
    data = await request.body()
    name = request.path_params["name"]
    return OrthancJSON(await run_in_threadpool(network(request).store_straight, name, data))


async def query(request: Request) -> Response:
    body = await body_object(request)
    query_id = await run_in_threadpool(network(request).query, request.path_params["name"], body)
    return OrthancJSON({"ID": query_id, "Path": f"/queries/{query_id}"})


async def move(request: Request) -> Response:
    body = await body_object(request)
    job = await run_in_threadpool(network(request).move_job, request.path_params["name"], body)
    return await job_response(request, job, body)


async def get(request: Request) -> Response:
    body = await body_object(request)
    job = await run_in_threadpool(network(request).get_job, request.path_params["name"], body)
    return await job_response(request, job, body)


async def lenient_json(request: Request) -> Any:
    """A JSON body, or ``None`` when it does not parse (an empty body included)."""
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def unanswered_or(answers: list[dict[str, Any]] | None) -> Response:
    """Orthanc's deprecated C-FIND routes answer a bare 400 when they decline a request."""
    return Response(status_code=400) if answers is None else OrthancJSON(answers)


async def find_level(request: Request) -> Response:
    body = await lenient_json(request)
    level = Level.parse(request.url.path.rsplit("-", 1)[1])
    name = request.path_params["name"]
    found = await run_in_threadpool(network(request).find_simple, name, level, body)
    return unanswered_or(found)


async def find_hierarchy(request: Request) -> Response:
    body = await lenient_json(request)
    name = request.path_params["name"]
    return unanswered_or(await run_in_threadpool(network(request).find_hierarchy, name, body))


async def find_worklist(request: Request) -> Response:
    body = await strict_json(request)
    if not isinstance(body, dict):
        raise BadFileFormat("Must provide a JSON object")
    name = request.path_params["name"]
    return OrthancJSON(await run_in_threadpool(network(request).find_worklist, name, body))


routes = [
    Route("/modalities", list_modalities, methods=["GET"]),
    Route("/modalities/{name}", modality_operations, methods=["GET"]),
    Route("/modalities/{name}", put_modality, methods=["PUT"]),
    Route("/modalities/{name}", delete_modality, methods=["DELETE"]),
    Route("/modalities/{name}/configuration", configuration, methods=["GET"]),
    Route("/modalities/{name}/echo", echo, methods=["POST"]),
    Route("/modalities/{name}/store", store, methods=["POST"]),
    Route("/modalities/{name}/store-straight", store_straight, methods=["POST"]),
    Route("/modalities/{name}/query", query, methods=["POST"]),
    Route("/modalities/{name}/move", move, methods=["POST"]),
    Route("/modalities/{name}/get", get, methods=["POST"]),
    Route("/modalities/{name}/find", find_hierarchy, methods=["POST"]),
    Route("/modalities/{name}/find-worklist", find_worklist, methods=["POST"]),
    *(
        Route(f"/modalities/{{name}}/find-{level}", find_level, methods=["POST"])
        for level in ("patient", "study", "series", "instance")
    ),
]
