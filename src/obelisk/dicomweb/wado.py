"""WADO-RS (PS3.18 §10.4): instances, metadata, frames and bulk data of stored files."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pydicom

from obelisk.core.changes import ContentType, MetadataType
from obelisk.core.levels import Level
from obelisk.dicomweb.dicom_json import PIXEL_DATA, JsonObject, dataset_json, tag_key
from obelisk.dicomweb.locate import Target, locate
from obelisk.dicomweb.media import AS_STORED, OCTET_STREAM, MediaRange
from obelisk.dicomweb.multipart import Part, content_type, join_parts, new_boundary, part_header
from obelisk.dicomweb.multipart import closing as closing_delimiter
from obelisk.dicomweb.negotiation import choose_bulk, choose_frames, choose_instances
from obelisk.dicomweb.transfer import (
    NotAcceptable,
    can_produce,
    extract_frames,
    frame_count,
    read,
    transcode,
)
from obelisk.errors import BadRequest, InexistentItem, InexistentTag
from obelisk.index.base import InstanceFile
from obelisk.services.context import Services
from obelisk.services.dicomweb import instance_header, transfer_syntaxes

#: Parts are gathered into chunks of about this size before they go to the socket.
CHUNK_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class Body:
    """An answer: its ``Content-Type`` and its bytes, produced lazily for large answers."""

    media_type: str
    chunks: Iterator[bytes]


def _files(services: Services, target: Target) -> list[InstanceFile]:
    resource = locate(services.resources, target)
    return services.index.instance_files(resource.internal_id, ContentType.Dicom)


def retrieve(services: Services, target: Target, accept: Sequence[MediaRange]) -> Body:
    """The instances of a study, series or instance as ``application/dicom`` parts."""
    choice = choose_instances(accept, single=target.level is Level.INSTANCE)
    files = _files(services, target)
    stored = transfer_syntaxes(services.index, [f.internal_id for f in files])
    wanted = choice.transfer_syntax
    if wanted != AS_STORED:
        for source in set(stored.values()):
            if not can_produce(source, wanted):
                raise NotAcceptable(f"Cannot transcode from {source} to {wanted}")

    def instance_bytes(file: InstanceFile) -> bytes:
        data = services.resources.reader.read(file.attachment)
        source = stored.get(file.internal_id, "")
        return data if wanted in (AS_STORED, source) else transcode(data, source, wanted)

    if not choice.multipart:
        return Body("application/dicom", iter([instance_bytes(files[0])]))
    boundary = new_boundary()
    part_type = "application/dicom"
    if wanted != AS_STORED:
        part_type += f"; transfer-syntax={wanted}"

    def chunks() -> Iterator[bytes]:
        pending: list[bytes] = []
        size = 0
        for file in files:
            data = instance_bytes(file)
            pending += [part_header(boundary, part_type, len(data)), data, b"\r\n"]
            size += len(data)
            if size >= CHUNK_SIZE:
                yield b"".join(pending)
                pending, size = [], 0
        pending.append(closing_delimiter(boundary))
        yield b"".join(pending)

    return Body(
        content_type("application/dicom", boundary, None if wanted == AS_STORED else wanted),
        chunks(),
    )


def metadata(services: Services, target: Target, base_url: str) -> list[JsonObject]:
    """DICOM JSON of every instance below the target, pixel data as a BulkDataURI."""
    files = _files(services, target)
    offsets = services.index.metadata_of_many(
        [f.internal_id for f in files], MetadataType.PixelDataOffset
    )
    answers = []
    for file in files:
        dataset = instance_header(services.resources, file.public_id)
        prefix = (
            f"{base_url}/studies/{dataset.get('StudyInstanceUID', '')}"
            f"/series/{dataset.get('SeriesInstanceUID', '')}"
            f"/instances/{dataset.get('SOPInstanceUID', '')}/bulk/"
        )

        def bulk_uri(path: tuple[int, ...], prefix: str = prefix) -> str:
            # lower-case hex in the path, as Orthanc writes it (either case is accepted)
            return prefix + "/".join(
                tag_key(p).lower() if i % 2 == 0 else str(p) for i, p in enumerate(path)
            )

        answer = dataset_json(dataset, bulk_uri)
        if file.internal_id in offsets:
            vr = "OW" if int(dataset.get("BitsAllocated", 16) or 16) > 8 else "OB"
            answer[tag_key(PIXEL_DATA)] = {"vr": vr, "BulkDataURI": bulk_uri((PIXEL_DATA,))}
        answers.append(answer)
    return answers


def _instance_dataset(services: Services, target: Target) -> pydicom.Dataset:
    resource = locate(services.resources, target)
    return read(services.resources.dicom_bytes(resource.public_id))


def parse_frame_list(text: str) -> list[int]:
    try:
        numbers = [int(item) for item in text.replace("%2C", ",").split(",") if item.strip()]
    except ValueError as exc:
        raise BadRequest(f"Bad list of frame numbers: {text}") from exc
    if not numbers:
        raise BadRequest("No frame number given")
    return numbers


def frames(
    services: Services,
    target: Target,
    numbers: list[int] | None,
    accept: Sequence[MediaRange],
    frame_url: str,
) -> Body:
    """Frames of an instance (all when ``numbers`` is None), each in its own part."""
    dataset = _instance_dataset(services, target)
    stored = str(dataset.file_meta.TransferSyntaxUID)
    wanted_numbers = numbers or list(range(1, frame_count(dataset) + 1))
    choice = choose_frames(accept, stored, single=len(wanted_numbers) == 1)
    decode = choice.transfer_syntax not in (AS_STORED, stored)
    found = extract_frames(dataset, wanted_numbers, decode=decode)
    part_type = f"{choice.part_type}; transfer-syntax={found.transfer_syntax}"
    if not choice.multipart:
        return Body(part_type, iter(found.frames))
    boundary = new_boundary()
    parts = [
        Part(part_type, data, f"{frame_url}/{number}")
        for number, data in zip(wanted_numbers, found.frames, strict=True)
    ]
    body = join_parts(boundary, parts)
    return Body(content_type(choice.part_type, boundary, found.transfer_syntax), iter([body]))


def parse_bulk_path(text: str) -> tuple[int, ...]:
    """``7FE00010`` or ``00081115/0/00081199/1/00081155`` (tag, item index, tag…)."""
    items = [item for item in text.strip("/").split("/") if item]
    try:
        path = tuple(int(item, 16) if i % 2 == 0 else int(item) for i, item in enumerate(items))
    except ValueError as exc:
        raise BadRequest(f"Bad bulk data path: {text}") from exc
    if len(path) % 2 == 0:
        raise BadRequest(f"A bulk data path must end with a tag: {text}")
    return path


def bulk(
    services: Services, target: Target, path: tuple[int, ...], accept: Sequence[MediaRange]
) -> Body:
    choice = choose_bulk(accept)
    dataset = _instance_dataset(services, target)
    data = _value_at(dataset, path)
    if not choice.multipart:
        return Body(OCTET_STREAM, iter([data]))
    boundary = new_boundary()
    body = join_parts(boundary, [Part(OCTET_STREAM, data)])
    return Body(content_type(OCTET_STREAM, boundary), iter([body]))


def _value_at(dataset: pydicom.Dataset, path: tuple[int, ...]) -> bytes:
    current = dataset
    for position in range(0, len(path) - 1, 2):
        element = current.get(path[position])
        index = path[position + 1]
        if element is None or element.VR != "SQ" or not 0 <= index < len(element.value):
            raise InexistentItem(f"No sequence item at {tag_key(path[position])}/{index}")
        current = element.value[index]
    element = current.get(path[-1])
    if element is None:
        raise InexistentTag(f"No attribute {tag_key(path[-1])} in this instance")
    value = element.value
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise BadRequest(f"Attribute {tag_key(path[-1])} is not binary: it is in the metadata")


#: What WADO-URI can answer, by preference when the client lists several.
WADO_URI_TYPES = ("application/dicom", "image/jpeg", "image/png")


def wado_uri_content_type(text: str | None) -> str:
    """``contentType`` may list several types (PS3.18 §9.2.3.3); image/jpeg when absent."""
    listed = [item.split(";")[0].strip().lower() for item in (text or "image/jpeg").split(",")]
    supported = [item for item in listed if item in WADO_URI_TYPES]
    return supported[0] if supported else listed[0]


def wado_uri(services: Services, target: Target, transfer_syntax: str | None) -> bytes:
    """WADO-URI with ``contentType=application/dicom``: the Part-10 file."""
    resource = locate(services.resources, target)
    data = services.resources.dicom_bytes(resource.public_id)
    if transfer_syntax in (None, "", AS_STORED):
        return data
    stored = services.index.metadata(resource.internal_id).get(int(MetadataType.TransferSyntax), "")
    return transcode(data, stored, transfer_syntax)
