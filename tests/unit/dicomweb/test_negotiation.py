from __future__ import annotations

import pytest

from obelisk.dicomweb.media import parse_accept
from obelisk.dicomweb.negotiation import choose_bulk, choose_frames, choose_instances
from obelisk.dicomweb.transfer import NotAcceptable
from obelisk.errors import BadRequest

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"
JPEG_LS = "1.2.840.10008.1.2.4.80"
RLE = "1.2.840.10008.1.2.5"
MPEG2 = "1.2.840.10008.1.2.4.100"


def frames(accept: str | None, stored: str, single: bool = True) -> tuple[str, str, bool]:
    choice = choose_frames(parse_accept(accept), stored, single=single)
    return choice.part_type, choice.transfer_syntax, choice.multipart


def test_frames_of_uncompressed_files() -> None:
    octet = "application/octet-stream"
    assert frames(None, EXPLICIT) == (octet, "*", True)
    assert frames('multipart/related; type="*/*"', IMPLICIT) == (octet, "*", True)
    ohif = "multipart/related; type=application/octet-stream; transfer-syntax=*"
    assert frames(ohif, EXPLICIT) == (octet, "*", True)
    assert frames('multipart/related; type="application/octet-stream"', IMPLICIT) == (
        octet,
        EXPLICIT,
        True,
    )
    assert frames("application/octet-stream", EXPLICIT) == (octet, "*", False)
    with pytest.raises(NotAcceptable):
        frames('multipart/related; type="image/jls"', EXPLICIT)


def test_frames_of_compressed_files() -> None:
    octet = 'multipart/related; type="application/octet-stream"'
    assert frames(octet, RLE)[1] == EXPLICIT  # decoded
    assert frames(octet + "; transfer-syntax=*", RLE)[1] == "*"
    assert frames('multipart/related; type="image/x-dicom-rle"', RLE)[0] == "image/x-dicom-rle"
    assert frames(f'multipart/related; type="image/jls", {octet}', JPEG_LS)[0] == "image/jls"
    with pytest.raises(NotAcceptable):
        frames(octet, MPEG2)  # no decoder for video


def test_several_frames_need_multipart() -> None:
    with pytest.raises(NotAcceptable):
        frames("application/octet-stream", EXPLICIT, single=False)


def test_instances() -> None:
    choice = choose_instances(parse_accept(None), single=False)
    assert (choice.part_type, choice.transfer_syntax, choice.multipart) == (
        "application/dicom",
        "*",
        True,
    )
    wanted = f'multipart/related; type="application/dicom"; transfer-syntax={RLE}'
    assert choose_instances(parse_accept(wanted), single=False).transfer_syntax == RLE
    single = choose_instances(parse_accept("application/dicom"), single=True)
    assert not single.multipart
    with pytest.raises(NotAcceptable):
        choose_instances(parse_accept("application/dicom"), single=False)
    with pytest.raises(NotAcceptable):
        choose_instances(parse_accept("image/png"), single=True)
    with pytest.raises(BadRequest):
        choose_instances(parse_accept("multipart/related; transfer-syntax=9.9.9"), single=True)


def test_bulk() -> None:
    assert choose_bulk(parse_accept(None)).multipart
    assert not choose_bulk(parse_accept("application/octet-stream")).multipart
    with pytest.raises(NotAcceptable):
        choose_bulk(parse_accept("text/html"))


def test_wado_uri_content_types() -> None:
    from obelisk.dicomweb.wado import wado_uri_content_type

    assert wado_uri_content_type(None) == "image/jpeg"
    assert wado_uri_content_type("image/gif, image/png") == "image/png"
    assert wado_uri_content_type("application/dicom;q=1") == "application/dicom"
    assert wado_uri_content_type("video/mpeg") == "video/mpeg"  # refused by the caller
