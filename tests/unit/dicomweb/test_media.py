from __future__ import annotations

from obelisk.dicomweb.media import parse_accept, parse_media_type


def test_quoted_and_unquoted_parameters_read_the_same() -> None:
    quoted = parse_media_type(
        'multipart/related; type="application/octet-stream"; transfer-syntax="*"'
    )
    bare = parse_media_type("multipart/related; type=application/octet-stream; transfer-syntax=*")
    for media in (quoted, bare):
        assert media.media_type == "multipart/related"
        assert media.part_type == "application/octet-stream"
        assert media.transfer_syntax == "*"


def test_transfer_syntax_inside_the_type_parameter() -> None:
    media = parse_media_type(
        'multipart/related; type="application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"'
    )
    assert media.part_type == "application/octet-stream"
    assert media.transfer_syntax == "1.2.840.10008.1.2.1"


def test_accept_lists_are_ordered_by_quality() -> None:
    ranges = parse_accept(
        'multipart/related; type="image/jls"; q=0.5, '
        'multipart/related; type="application/octet-stream"; transfer-syntax=*, image/png; q=0'
    )
    assert [r.part_type for r in ranges] == ["application/octet-stream", "image/jls"]


def test_absent_accept_means_anything() -> None:
    assert [r.media_type for r in parse_accept(None)] == ["*/*"]
    assert [r.media_type for r in parse_accept("  ")] == ["*/*"]


def test_boundary_keeps_its_case() -> None:
    media = parse_media_type('multipart/related; type="application/dicom"; boundary="AbC"')
    assert media.params["boundary"] == "AbC"
