"""``/queries``: the answers of C-FIND requests made with ``/modalities/{id}/query``, and their
retrieval with C-MOVE (a ``DicomMoveScu`` job)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from obelisk.core.levels import Level
from obelisk.errors import ParameterOutOfRange
from obelisk.http.jobs_support import job_response
from obelisk.http.params import flag
from obelisk.http.responses import OrthancJSON
from obelisk.http.routes.modalities import body_object, network
from obelisk.services.dicom_queries import tag_format

_OPERATIONS = ["answers", "level", "modality", "query", "retrieve"]
_ANSWER_OPERATIONS = ["content", "query-instances", "query-series", "query-studies", "retrieve"]


def _style(request: Request) -> str:
    if flag(request, "simplify"):
        return "simplify"
    return "short" if flag(request, "short") else "full"


def _index(request: Request) -> int:
    text = request.path_params["index"]
    if not text.isdigit():
        raise ParameterOutOfRange(f"Bad answer index: {text}")
    return int(text)


async def list_queries(request: Request) -> Response:
    return OrthancJSON(network(request).query_ids())


async def query_operations(request: Request) -> Response:
    network(request).stored_query(request.path_params["id"])
    return OrthancJSON(_OPERATIONS)


async def delete_query(request: Request) -> Response:
    network(request).delete_query(request.path_params["id"])
    return OrthancJSON({})


async def answers(request: Request) -> Response:
    stored = network(request).stored_query(request.path_params["id"])
    if flag(request, "expand"):
        style = _style(request)
        return OrthancJSON([tag_format(answer, style) for answer in stored.answers])
    return OrthancJSON([str(i) for i in range(len(stored.answers))])


async def answer_operations(request: Request) -> Response:
    network(request).answer(request.path_params["id"], _index(request))
    return OrthancJSON(_ANSWER_OPERATIONS)


async def answer_content(request: Request) -> Response:
    answer = network(request).answer(request.path_params["id"], _index(request))
    return OrthancJSON(tag_format(answer, _style(request)))


async def level(request: Request) -> Response:
    return OrthancJSON(network(request).stored_query(request.path_params["id"]).level.title)


async def modality(request: Request) -> Response:
    return OrthancJSON(network(request).stored_query(request.path_params["id"]).modality)


async def original_query(request: Request) -> Response:
    stored = network(request).stored_query(request.path_params["id"])
    return OrthancJSON(
        tag_format(stored.query, _style(request) if request.query_params else "simplify")
    )


async def retrieve_all(request: Request) -> Response:
    body = await body_object(request, plain_key="TargetAet")
    query_id = request.path_params["id"]
    job = await run_in_threadpool(network(request).retrieve_job, query_id, None, body)
    return await job_response(request, job, body)


def _child_query(level: Level) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = await body_object(request)
        query_id = await run_in_threadpool(
            network(request).child_query,
            request.path_params["id"],
            _index(request),
            level,
            body,
        )
        return OrthancJSON({"ID": query_id, "Path": f"/queries/{query_id}"})

    return endpoint


async def retrieve_answer(request: Request) -> Response:
    body = await body_object(request, plain_key="TargetAet")
    query_id, index = request.path_params["id"], _index(request)
    job = await run_in_threadpool(network(request).retrieve_job, query_id, index, body)
    return await job_response(request, job, body)


routes = [
    Route("/queries", list_queries, methods=["GET"]),
    Route("/queries/{id}", query_operations, methods=["GET"]),
    Route("/queries/{id}", delete_query, methods=["DELETE"]),
    Route("/queries/{id}/answers", answers, methods=["GET"]),
    Route("/queries/{id}/answers/{index}", answer_operations, methods=["GET"]),
    Route("/queries/{id}/answers/{index}/content", answer_content, methods=["GET"]),
    Route("/queries/{id}/answers/{index}/retrieve", retrieve_answer, methods=["POST"]),
    *(
        Route(
            f"/queries/{{id}}/answers/{{index}}/query-{name}", _child_query(level), methods=["POST"]
        )
        for name, level in (
            ("studies", Level.STUDY),
            ("series", Level.SERIES),
            ("instances", Level.INSTANCE),
        )
    ),
    Route("/queries/{id}/level", level, methods=["GET"]),
    Route("/queries/{id}/modality", modality, methods=["GET"]),
    Route("/queries/{id}/query", original_query, methods=["GET"]),
    Route("/queries/{id}/retrieve", retrieve_all, methods=["POST"]),
]
