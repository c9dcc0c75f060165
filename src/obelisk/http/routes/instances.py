"""Receiving instances and reading their content: file, tags, header, raw values, frames."""

from __future__ import annotations

import io
import zipfile

import pydicom
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from obelisk.core.dicom_json import element_text, full_tags
from obelisk.core.tags import format_tag, parse_tag
from obelisk.errors import BadFileFormat, InexistentItem
from obelisk.http.params import services
from obelisk.http.render import store_json
from obelisk.http.responses import OrthancJSON
from obelisk.http.routes.resources import format_tags
from obelisk.services.ingest import Origin, StoreResult

_ZIP_MAGIC = b"PK\x03\x04"


def _origin(request: Request) -> Origin:
    client = request.client
    return Origin(
        kind="RestApi",
        remote_ip=client.host if client else "",
        http_username=request.scope.get("obelisk.user", "") or "",
    )


async def upload(request: Request) -> Response:
    """``POST /instances``: one DICOM file, or a ZIP of DICOM files (answers a list)."""
    body = await request.body()
    svc = services(request).ingest
    origin = _origin(request)
    if body.startswith(_ZIP_MAGIC):

        def store_zip() -> list[StoreResult]:
            try:
                archive = zipfile.ZipFile(io.BytesIO(body))
            except zipfile.BadZipFile as exc:
                raise BadFileFormat("Corrupted ZIP archive", details=str(exc)) from exc
            results = []
            for entry in archive.infolist():
                if entry.is_dir():
                    continue
                data = archive.read(entry)
                try:
                    results.append(svc.store(data, origin))
                except BadFileFormat:
                    continue  # Orthanc skips the files of an archive that are not DICOM
            return results

        return OrthancJSON([store_json(r) for r in await run_in_threadpool(store_zip)])
    return OrthancJSON(store_json(await svc.store_async(body, origin)))


async def get_file(request: Request) -> Response:
    svc = services(request).resources
    data = await run_in_threadpool(svc.dicom_bytes, request.path_params["id"])
    return Response(data, media_type="application/dicom")


async def export(request: Request) -> Response:
    """``POST /instances/{id}/export``: the body is a path on the server's file system."""
    path = (await request.body()).decode("utf-8", errors="replace")
    svc = services(request).resources
    await run_in_threadpool(svc.export_to_filesystem, request.path_params["id"], path)
    return OrthancJSON({})


async def tags(request: Request) -> Response:
    svc = services(request).resources
    dataset = await run_in_threadpool(svc.dataset, request.path_params["id"])
    return OrthancJSON(format_tags(request, full_tags(dataset)))


async def simplified_tags(request: Request) -> Response:
    request.scope["query_string"] = b"simplify"
    return await tags(request)


async def header(request: Request) -> Response:
    svc = services(request).resources
    dataset = await run_in_threadpool(
        svc.dataset, request.path_params["id"], stop_before_pixels=True
    )
    meta = full_tags(dataset.file_meta)
    # Orthanc leaves out the binary FileMetaInformationVersion
    meta = {key: value for key, value in meta.items() if value["Type"] != "Null"}
    return OrthancJSON(format_tags(request, meta))


async def content(request: Request) -> Response:
    """``/content/0010-0010``, ``/content/0008-1140/0/0008-1150``: raw values, sequences."""
    svc = services(request).resources
    dataset = await run_in_threadpool(svc.dataset, request.path_params["id"])
    parts = [p for p in request.path_params.get("path", "").split("/") if p]
    node: object = dataset
    for part in parts:
        if isinstance(node, pydicom.Dataset):
            try:
                tag = parse_tag(part)
            except ValueError as exc:
                raise InexistentItem(f"Bad tag in path: {part}") from exc
            if tag not in node:
                raise InexistentItem(f"No tag {part}")
            element = node[tag]
            node = element.value if element.VR == "SQ" else element
        elif isinstance(node, pydicom.Sequence):
            if not part.isdigit() or int(part) >= len(node):
                raise InexistentItem(f"No item {part} in the sequence")
            node = node[int(part)]
        else:
            raise InexistentItem("Cannot go below a value")
    if isinstance(node, pydicom.Dataset):
        return OrthancJSON([format_tag(int(e.tag)).replace(",", "-") for e in node])
    if isinstance(node, pydicom.Sequence):
        return OrthancJSON([str(i) for i in range(len(node))])
    assert isinstance(node, pydicom.DataElement)
    if isinstance(node.value, bytes):
        return Response(node.value, media_type="application/octet-stream")
    return PlainTextResponse(element_text(node))


async def frames(request: Request) -> Response:
    svc = services(request).resources
    dataset = await run_in_threadpool(
        svc.dataset, request.path_params["id"], stop_before_pixels=True
    )
    count = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    return OrthancJSON(list(range(count)))


_FRAME_ROUTES = [
    "image-int16", "image-uint16", "image-uint8", "matlab", "numpy", "preview", "raw", "raw.gz",
    "rendered",
]  # fmt: skip


async def frame_index(request: Request) -> Response:
    svc = services(request).resources
    dataset = await run_in_threadpool(
        svc.dataset, request.path_params["id"], stop_before_pixels=True
    )
    del dataset  # Orthanc checks the instance, not the frame number, for this listing
    return OrthancJSON(_FRAME_ROUTES)


#: Uploads first in the application's routes: Starlette tries routes in order, and the busiest
#: route then skips a few hundred pattern matches.
upload_routes = [Route("/instances", upload, methods=["POST"])]

routes = [
    Route("/instances/{id}/file", get_file, methods=["GET"]),
    Route("/instances/{id}/export", export, methods=["POST"]),
    Route("/instances/{id}/tags", tags, methods=["GET"]),
    Route("/instances/{id}/simplified-tags", simplified_tags, methods=["GET"]),
    Route("/instances/{id}/header", header, methods=["GET"]),
    Route("/instances/{id}/content", content, methods=["GET"]),
    Route("/instances/{id}/content/{path:path}", content, methods=["GET"]),
    Route("/instances/{id}/frames", frames, methods=["GET"]),
    Route("/instances/{id}/frames/{frame:int}", frame_index, methods=["GET"]),
]
