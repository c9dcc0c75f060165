"""``/tools/*``: find, lookup, clocks, UIDs, conformance."""

from __future__ import annotations

from typing import Any

from pydicom.uid import generate_uid
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from obelisk.core.levels import Level
from obelisk.core.tags import INDEXED_TAGS, parse_tag
from obelisk.core.timestamps import now_iso
from obelisk.errors import BadRequest, NotImplementedYet, ParameterOutOfRange
from obelisk.http.params import expect_type, json_object, services
from obelisk.http.render import resource_json
from obelisk.http.responses import OrthancJSON, ok
from obelisk.services.find import FindRequest, level_field

_CONFORMANCE = """Obelisk DICOM conformance (summary)
Implementation: Obelisk, Orthanc REST API 1.10.1 compatible
Verification SOP Class (1.2.840.10008.1.1): SCP and SCU
Storage SOP Classes: all, stored as received (no transcoding on receive)
Query/Retrieve: Patient Root and Study Root, FIND/MOVE/GET
Transfer syntaxes: Implicit VR LE, Explicit VR LE/BE, Deflated, JPEG, JPEG-LS, JPEG 2000, RLE
"""


async def find(request: Request) -> Response:
    body = await json_object(request)
    level = level_field(body)
    query = body.get("Query")
    if not isinstance(query, dict):
        raise BadRequest('Field "Query" is required and must be a JSON object')
    svc = services(request)
    find_request = FindRequest(
        level=level,
        query=query,
        case_sensitive=bool(expect_type(body, "CaseSensitive", bool, False)),
        limit=expect_type(body, "Limit", int, None) or None,
        since=expect_type(body, "Since", int, 0),
    )
    requested = expect_type(body, "RequestedTags", list, [])
    expand = expect_type(body, "Expand", bool, False)
    style = "short" if body.get("Short") else "full" if body.get("Full") else "human"

    def work() -> list[Any]:  # one trip to a worker thread: latency matters on small indexes
        ids = svc.find.find(find_request)
        if not expand:
            return [r.public_id for r in svc.index.get_by_internal_ids(ids, children=False)]
        answers = [resource_json(v, style) for v in svc.resources.views_of_internal(ids)]
        if requested:
            _add_requested_tags(request, answers, requested)
        return answers

    return OrthancJSON(await run_in_threadpool(work))


def _add_requested_tags(request: Request, answers: list[dict[str, Any]], names: list[Any]) -> None:
    """Orthanc 1.11's ``RequestedTags``: main tags from the index, others from a file."""
    from obelisk.core.dicom_json import element_text

    svc = services(request).resources
    tags = []
    for name in names:
        try:
            tags.append(parse_tag(str(name)))
        except ValueError as exc:
            raise BadRequest(f"Unknown tag in RequestedTags: {name}") from exc
    for answer in answers:
        level = Level.parse(answer["Type"])
        found: dict[str, str] = {}
        known = {**answer.get("PatientMainDicomTags", {}), **answer["MainDicomTags"]}
        dataset = None
        for tag in tags:
            keyword = INDEXED_TAGS.get(tag)
            if keyword and keyword in known:
                found[keyword] = known[keyword]
                continue
            if dataset is None:
                instance = svc.any_instance(level, answer["ID"])
                dataset = svc.dataset(instance, stop_before_pixels=True)
            element = dataset.get(tag)
            if element is not None:
                found[element.keyword or f"{tag:08x}"] = element_text(element)
        answer["RequestedTags"] = found


async def lookup(request: Request) -> Response:
    value = (await request.body()).decode("utf-8", "replace")
    found = await run_in_threadpool(services(request).resources.lookup, value)
    return OrthancJSON(
        [
            {"ID": r.public_id, "Path": f"/{r.level.plural}/{r.public_id}", "Type": r.level.title}
            for r in found
        ]
    )


async def now(request: Request) -> Response:
    return PlainTextResponse(now_iso(utc=not request.url.path.endswith("-local")))


async def generate(request: Request) -> Response:
    level = request.query_params.get("level", "")
    if level.lower() not in ("patient", "study", "series", "instance"):
        raise ParameterOutOfRange('Argument "level" must be patient, study, series or instance')
    return PlainTextResponse(str(generate_uid()))


async def conformance(request: Request) -> Response:
    return PlainTextResponse(_CONFORMANCE)


async def get_default_encoding(request: Request) -> Response:
    return PlainTextResponse(str(services(request).settings["DefaultEncoding"]))


async def put_default_encoding(request: Request) -> Response:
    value = (await request.body()).decode().strip()
    services(request).settings.values["DefaultEncoding"] = value
    return ok()


async def tools_index(request: Request) -> Response:
    """Every ``/tools/<name>`` the application serves, whichever module defines it."""
    paths = [getattr(route, "path", "") for route in request.app.routes]
    return OrthancJSON(
        sorted({p.split("/")[2] for p in paths if p.startswith("/tools/") and p.count("/") == 2})
    )


def _stop_server(request: Request, *, restart: bool) -> Response:
    """Orthanc's ``/tools/shutdown`` and ``/tools/reset``: answered first, then the server stops
    gracefully (requests in flight finish)."""
    stop = request.app.state.stop_server
    if stop is None:
        raise NotImplementedYet("This server cannot be stopped or restarted over REST")
    stop(restart=restart)
    return ok()


async def shutdown(request: Request) -> Response:
    return _stop_server(request, restart=False)


async def reset(request: Request) -> Response:
    return _stop_server(request, restart=True)


routes = [
    Route("/tools", tools_index, methods=["GET"]),
    Route("/tools/shutdown", shutdown, methods=["POST"]),
    Route("/tools/reset", reset, methods=["POST"]),
    Route("/tools/find", find, methods=["POST"]),
    Route("/tools/lookup", lookup, methods=["POST"]),
    Route("/tools/now", now, methods=["GET"]),
    Route("/tools/now-local", now, methods=["GET"]),
    Route("/tools/generate-uid", generate, methods=["GET"]),
    Route("/tools/dicom-conformance", conformance, methods=["GET"]),
    Route("/tools/default-encoding", get_default_encoding, methods=["GET"]),
    Route("/tools/default-encoding", put_default_encoding, methods=["PUT"]),
]
