from __future__ import annotations

import pytest

from obelisk.dicomweb.multipart import Part, boundary_of, join_parts, parse_parts
from obelisk.errors import BadRequest


def test_round_trip_with_binary_data_containing_crlf() -> None:
    parts = [Part("application/dicom", b"\r\n--not-it\r\n" + bytes(range(256))), Part("a/b", b"")]
    body = join_parts("xyz", parts)
    assert body.startswith(b"--xyz\r\nContent-Type: application/dicom\r\n")
    assert body.endswith(b"--xyz--\r\n")
    received = parse_parts(body, "xyz")
    assert [p.data for p in received] == [p.data for p in parts]
    assert received[0].media_type == "application/dicom"
    assert received[0].headers["content-length"] == str(len(parts[0].data))


def test_preamble_epilogue_and_parts_without_headers() -> None:
    body = (
        b"preamble\r\n--b\r\n\r\nfirst\r\n"
        b"--b\r\nCONTENT-TYPE: x/y\r\n\r\nsecond\r\n--b--\r\nepilogue"
    )
    received = parse_parts(body, "b")
    assert [(p.media_type, p.data) for p in received] == [("", b"first"), ("x/y", b"second")]


def test_quoted_boundary_in_the_content_type() -> None:
    header = 'multipart/related; type="application/dicom"; boundary="quoted=b"'
    assert boundary_of(header) == "quoted=b"


def test_refusals() -> None:
    with pytest.raises(BadRequest) as refused:
        boundary_of("application/dicom")
    assert refused.value.http_status == 415
    with pytest.raises(BadRequest):
        boundary_of("multipart/related; type=application/dicom")
    with pytest.raises(BadRequest):
        parse_parts(b"--b\r\nContent-Type: a/b\r\n\r\nno end", "b")
    with pytest.raises(BadRequest):
        parse_parts(b"nothing here", "b")
