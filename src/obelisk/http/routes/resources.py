"""The resource tree: lists, resources, parents and children, deletion, statistics, modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from obelisk.core.dicom_json import full_tags, shorten, simplify
from obelisk.core.levels import Level
from obelisk.core.modules import MODULE_TAGS
from obelisk.core.tags import format_tag
from obelisk.errors import BadRequest, UnknownResource
from obelisk.http.params import flag, services, since_limit, tag_style
from obelisk.http.render import resource_json, statistics_json
from obelisk.http.responses import OrthancJSON, empty
from obelisk.services.reconstruction import reconstruct


def format_tags(request: Request, full: dict[str, Any]) -> dict[str, Any]:
    """``?simplify``, ``?short`` or the full form of Orthanc's tag JSON."""
    if flag(request, "simplify"):
        return simplify(full)
    if flag(request, "short"):
        return shorten(full)
    return full


async def list_resources(request: Request) -> Response:
    level: Level = request.path_params["level"]
    since, limit = since_limit(request)
    svc = services(request).resources
    if flag(request, "expand"):
        views = await run_in_threadpool(svc.list_views, level, since=since, limit=limit)
        style = tag_style(request)
        return OrthancJSON([resource_json(v, style) for v in views])
    return OrthancJSON(await run_in_threadpool(svc.list_ids, level, since=since, limit=limit))


async def get_resource(request: Request) -> Response:
    level: Level = request.path_params["level"]
    view = await run_in_threadpool(
        services(request).resources.view, level, request.path_params["id"]
    )
    return OrthancJSON(resource_json(view, tag_style(request)))


async def delete_resource(request: Request) -> Response:
    level: Level = request.path_params["level"]
    outcome = await run_in_threadpool(
        services(request).resources.delete, level, request.path_params["id"]
    )
    remaining = None
    if outcome.remaining_ancestor is not None:
        ancestor_level, ancestor_id = outcome.remaining_ancestor
        remaining = {
            "ID": ancestor_id,
            "Path": f"/{ancestor_level.plural}/{ancestor_id}",
            "Type": ancestor_level.title,
        }
    return OrthancJSON({"RemainingAncestor": remaining})


def _relative(target: Level) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        level: Level = request.path_params["level"]
        public_id = request.path_params["id"]
        svc = services(request).resources
        style = tag_style(request)
        if target == level:
            raise UnknownResource(f"No {target.plural} route below a {level.title.lower()}")
        if target > level:
            views = await run_in_threadpool(svc.descendants, level, public_id, target)
            if "expand" in request.query_params and not flag(request, "expand"):
                return OrthancJSON([v.resource.public_id for v in views])
            return OrthancJSON([resource_json(v, style) for v in views])
        view = await run_in_threadpool(svc.ancestor, level, public_id, target)
        return OrthancJSON(resource_json(view, style))

    return endpoint


async def reconstruct_resource(request: Request) -> Response:
    """``POST /{level}/{id}/reconstruct``: main tags read again from the files; an empty
    answer, as Orthanc 1.10.1 gives."""
    level: Level = request.path_params["level"]
    resources = services(request).resources
    await run_in_threadpool(reconstruct, resources, level, request.path_params["id"])
    return empty()


async def statistics(request: Request) -> Response:
    level: Level = request.path_params["level"]
    stats = await run_in_threadpool(
        services(request).resources.statistics, level, request.path_params["id"]
    )
    return OrthancJSON(statistics_json(stats))


async def get_protected(request: Request) -> Response:
    resource = services(request).resources.get(Level.PATIENT, request.path_params["id"])
    return PlainTextResponse("1" if resource.protected else "0")


async def put_protected(request: Request) -> Response:
    body = (await request.body()).decode().strip()
    if body not in ("0", "1"):
        raise BadRequest('The body must be "0" or "1"')
    await run_in_threadpool(
        services(request).resources.set_protected, request.path_params["id"], body == "1"
    )
    return PlainTextResponse("")


async def shared_tags(request: Request) -> Response:
    level: Level = request.path_params["level"]
    tags = await run_in_threadpool(
        services(request).resources.shared_tags, level, request.path_params["id"]
    )
    return OrthancJSON(format_tags(request, tags))


async def instances_tags(request: Request) -> Response:
    level: Level = request.path_params["level"]
    svc = services(request).resources

    def work() -> dict[str, Any]:
        result = {}
        for view in svc.descendants(level, request.path_params["id"], Level.INSTANCE):
            public_id = view.resource.public_id
            # The whole file: Orthanc lists PixelData (as null) and the tags after it.
            result[public_id] = format_tags(request, full_tags(svc.dataset(public_id)))
        return result

    return OrthancJSON(await run_in_threadpool(work))


async def ordered_slices(request: Request) -> Response:
    """Orthanc's deprecated ``/series/{id}/ordered-slices``, still used by old viewers."""
    svc = services(request).resources
    slices, is_volume = await run_in_threadpool(svc.ordered_slices, request.path_params["id"])
    return OrthancJSON(
        {
            "Type": "Volume" if is_volume else "Sequence",
            "Dicom": [f"/instances/{s.public_id}/file" for s in slices],
            "Slices": [
                f"/instances/{s.public_id}/frames/{frame}"
                for s in slices
                for frame in range(s.frames)
            ],
            "SlicesShort": [[s.public_id, 0, s.frames] for s in slices],
        }
    )


def _module_route(level: Level, suffix: str, module_level: Level) -> Route:
    """``/{level}/{id}/module``: the main tags of a level, read from one instance's file."""
    wanted = {format_tag(tag) for tag in MODULE_TAGS[module_level]}

    async def endpoint(request: Request) -> Response:
        svc = services(request).resources

        def work() -> dict[str, Any]:
            instance = svc.any_instance(level, request.path_params["id"])
            full = full_tags(svc.dataset(instance, stop_before_pixels=True))
            return {key: value for key, value in full.items() if key in wanted}

        return OrthancJSON(format_tags(request, await run_in_threadpool(work)))

    return Route(f"/{level.plural}/{{id}}/{suffix}", endpoint, methods=["GET"])


routes = [
    Route("/{level:level}", list_resources, methods=["GET"]),
    Route("/{level:level}/{id}", get_resource, methods=["GET"]),
    Route("/{level:level}/{id}", delete_resource, methods=["DELETE"]),
    *[
        Route(f"/{{level:level}}/{{id}}/{name}", _relative(target), methods=["GET"])
        for name, target in (
            ("patient", Level.PATIENT),
            ("study", Level.STUDY),
            ("studies", Level.STUDY),
            ("series", Level.SERIES),
            ("instances", Level.INSTANCE),
        )
    ],
    Route("/{level:level}/{id}/statistics", statistics, methods=["GET"]),
    Route("/{level:level}/{id}/reconstruct", reconstruct_resource, methods=["POST"]),
    Route("/patients/{id}/protected", get_protected, methods=["GET"]),
    Route("/patients/{id}/protected", put_protected, methods=["PUT"]),
    Route("/{level:level}/{id}/shared-tags", shared_tags, methods=["GET"]),
    Route("/{level:level}/{id}/instances-tags", instances_tags, methods=["GET"]),
    Route("/series/{id}/ordered-slices", ordered_slices, methods=["GET"]),
    *[_module_route(level, "module", level) for level in Level],
    _module_route(Level.STUDY, "module-patient", Level.PATIENT),
]
