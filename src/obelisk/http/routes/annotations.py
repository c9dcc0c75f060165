"""Metadata and attachments of every level."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from obelisk.core.levels import Level
from obelisk.http.params import flag, services
from obelisk.http.responses import OrthancJSON, empty, ok
from obelisk.index.base import Attachment
from obelisk.services.annotations import attachment_etag

_PREFIX = "/{level:level}/{id}"


def _key(request: Request) -> tuple[Level, str, str]:
    return request.path_params["level"], request.path_params["id"], request.path_params["name"]


def _if_match(request: Request) -> str | None:
    """The ``If-Match`` header of a write or a delete (the service checks it)."""
    return request.headers.get("if-match")


def _tagged(response: Response, etag: str) -> Response:
    response.headers["ETag"] = etag
    return response


async def list_metadata(request: Request) -> Response:
    level: Level = request.path_params["level"]
    values = await run_in_threadpool(
        services(request).annotations.metadata, level, request.path_params["id"]
    )
    return OrthancJSON(values if flag(request, "expand") else list(values))


async def get_metadata(request: Request) -> Response:
    found = await run_in_threadpool(services(request).annotations.get_metadata, *_key(request))
    return _tagged(PlainTextResponse(found.value), found.etag)


async def put_metadata(request: Request) -> Response:
    value = (await request.body()).decode("utf-8")
    svc = services(request).annotations
    etag = await run_in_threadpool(
        partial(svc.set_metadata, *_key(request), value, if_match=_if_match(request))
    )
    return _tagged(empty(), etag)


async def delete_metadata(request: Request) -> Response:
    svc = services(request).annotations
    await run_in_threadpool(
        partial(svc.delete_metadata, *_key(request), if_match=_if_match(request))
    )
    return empty()


async def list_attachments(request: Request) -> Response:
    level: Level = request.path_params["level"]
    svc = services(request).annotations
    found = await run_in_threadpool(svc.attachments, level, request.path_params["id"])
    if flag(request, "numeric"):
        return OrthancJSON([a.content_type for a in found])
    return OrthancJSON([svc.attachment_name(a) for a in found])


async def _attachment(request: Request) -> Attachment:
    svc = services(request).annotations
    return await run_in_threadpool(svc.attachment, *_key(request))


async def attachment_index(request: Request) -> Response:
    a = await _attachment(request)
    return _tagged(
        OrthancJSON(
            [
                "compress",
                "compressed-data",
                "compressed-md5",
                "compressed-size",
                "data",
                "info",
                "is-compressed",
                "md5",
                "size",
                "uncompress",
                "verify-md5",
                "uuid",  # listed by Orthanc 1.10.1, which has no such route either
            ]
        ),
        attachment_etag(a),
    )


async def attachment_info(request: Request) -> Response:
    a = await _attachment(request)
    info = {
        "CompressedMD5": a.compressed_md5,
        "CompressedSize": a.compressed_size,
        "ContentType": a.content_type,
        "UncompressedMD5": a.uncompressed_md5,
        "UncompressedSize": a.uncompressed_size,
        "Uuid": a.uuid,
    }
    return _tagged(OrthancJSON(info), attachment_etag(a))


async def attachment_data(request: Request) -> Response:
    svc = services(request).annotations
    a = await _attachment(request)
    media = "application/dicom" if a.content_type == 1 else "application/octet-stream"
    if request.url.path.endswith("/compressed-data"):
        data = await run_in_threadpool(svc.reader.read_stored, a)
        media = "application/octet-stream"  # as Orthanc, even for the DICOM file
    else:
        data = await run_in_threadpool(svc.read, a)
    return _tagged(Response(data, media_type=media), attachment_etag(a))


def _field(getter: Callable[[Attachment], object]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        a = await _attachment(request)
        return _tagged(PlainTextResponse(str(getter(a))), attachment_etag(a))

    return endpoint


async def verify_md5(request: Request) -> Response:
    a = await _attachment(request)
    await run_in_threadpool(services(request).annotations.verify_md5, a)
    return ok()


async def set_compression(request: Request) -> Response:
    compress = not request.url.path.endswith("/uncompress")
    svc = services(request).annotations
    await run_in_threadpool(partial(svc.set_compression, *_key(request), compress=compress))
    return ok()


async def put_attachment(request: Request) -> Response:
    data = await request.body()
    svc = services(request).annotations
    etag = await run_in_threadpool(
        partial(svc.put_attachment, *_key(request), data, if_match=_if_match(request))
    )
    return _tagged(ok(), etag)


async def delete_attachment(request: Request) -> Response:
    svc = services(request).annotations
    await run_in_threadpool(
        partial(svc.delete_attachment, *_key(request), if_match=_if_match(request))
    )
    return empty()


_ATTACHMENT = _PREFIX + "/attachments/{name}"
routes = [
    Route(_PREFIX + "/metadata", list_metadata, methods=["GET"]),
    Route(_PREFIX + "/metadata/{name}", get_metadata, methods=["GET"]),
    Route(_PREFIX + "/metadata/{name}", put_metadata, methods=["PUT"]),
    Route(_PREFIX + "/metadata/{name}", delete_metadata, methods=["DELETE"]),
    Route(_PREFIX + "/attachments", list_attachments, methods=["GET"]),
    Route(_ATTACHMENT, attachment_index, methods=["GET"]),
    Route(_ATTACHMENT, put_attachment, methods=["PUT"]),
    Route(_ATTACHMENT, delete_attachment, methods=["DELETE"]),
    Route(_ATTACHMENT + "/info", attachment_info, methods=["GET"]),
    Route(_ATTACHMENT + "/data", attachment_data, methods=["GET"]),
    Route(_ATTACHMENT + "/compressed-data", attachment_data, methods=["GET"]),
    Route(_ATTACHMENT + "/md5", _field(lambda a: a.uncompressed_md5), methods=["GET"]),
    Route(_ATTACHMENT + "/size", _field(lambda a: a.uncompressed_size), methods=["GET"]),
    Route(_ATTACHMENT + "/compressed-md5", _field(lambda a: a.compressed_md5), methods=["GET"]),
    Route(_ATTACHMENT + "/compressed-size", _field(lambda a: a.compressed_size), methods=["GET"]),
    Route(
        _ATTACHMENT + "/is-compressed",
        _field(lambda a: 1 if a.compression else 0),
        methods=["GET"],
    ),
    Route(_ATTACHMENT + "/verify-md5", verify_md5, methods=["POST"]),
    Route(_ATTACHMENT + "/compress", set_compression, methods=["POST"]),
    Route(_ATTACHMENT + "/uncompress", set_compression, methods=["POST"]),
]
