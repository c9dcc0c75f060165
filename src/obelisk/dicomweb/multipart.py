"""``multipart/related`` bodies: writing answers part by part, reading STOW-RS requests.

Answers follow what cornerstone and dicomweb-client parse (see docs/dicomweb.md): the body starts
with the delimiter line, each part has a ``Content-Type:`` header written with that exact case,
and the closing delimiter is always present.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from obelisk.dicomweb.media import MULTIPART_RELATED, parse_media_type
from obelisk.errors import BadRequest


def new_boundary() -> str:
    return f"obelisk-{uuid.uuid4().hex}"


def content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    """The answer's ``Content-Type``; ``type`` is quoted because it may hold a ``/`` and ``;``."""
    inner = (
        part_type if transfer_syntax is None else f"{part_type}; transfer-syntax={transfer_syntax}"
    )
    return f'{MULTIPART_RELATED}; type="{inner}"; boundary={boundary}'


def part_header(boundary: str, media_type: str, length: int, location: str | None = None) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {media_type}", f"Content-Length: {length}"]
    if location:
        lines.append(f"Content-Location: {location}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")


@dataclass(frozen=True, slots=True)
class Part:
    media_type: str
    data: bytes
    location: str | None = None


def encode_parts(boundary: str, parts: Iterable[Part]) -> Iterator[bytes]:
    """Yields the body chunk by chunk: one header, the data and a CRLF per part, then the end."""
    for part in parts:
        yield part_header(boundary, part.media_type, len(part.data), part.location)
        yield part.data
        yield b"\r\n"
    yield closing(boundary)


def join_parts(boundary: str, parts: Iterable[Part]) -> bytes:
    return b"".join(encode_parts(boundary, parts))


@dataclass(frozen=True, slots=True)
class ReceivedPart:
    headers: dict[str, str]
    data: bytes

    @property
    def media_type(self) -> str:
        return parse_media_type(self.headers.get("content-type", "")).media_type


def boundary_of(content_type_header: str) -> str:
    media = parse_media_type(content_type_header)
    if media.media_type != MULTIPART_RELATED:
        raise BadRequest(
            f"Expected a multipart/related body, got: {content_type_header or 'nothing'}",
            http_status=415,
        )
    boundary = media.params.get("boundary", "")
    if not boundary:
        raise BadRequest("The multipart/related Content-Type has no boundary parameter")
    return boundary


def parse_parts(body: bytes, boundary: str) -> list[ReceivedPart]:
    """Splits a multipart body (RFC 2046): the preamble and the epilogue are ignored."""
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise BadRequest("The multipart body does not contain its boundary")
    parts: list[ReceivedPart] = []
    position = start + len(delimiter)
    while not body.startswith(b"--", position):  # "--" after a delimiter closes the body
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            break
        header_end = body.find(b"\r\n\r\n", line_end)
        if header_end < 0:
            raise BadRequest("A part of the multipart body has no end of headers")
        headers = _headers(body[line_end + 2 : header_end])
        data_start = header_end + 4
        next_delimiter = body.find(b"\r\n" + delimiter, data_start - 2)
        if next_delimiter < 0:
            raise BadRequest("The multipart body has no closing boundary")
        data_start = min(data_start, next_delimiter)  # a part with no headers and no data
        parts.append(ReceivedPart(headers, body[data_start:next_delimiter]))
        position = next_delimiter + 2 + len(delimiter)
    return parts


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers
