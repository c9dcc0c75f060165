"""Choosing what to send from the client's ``Accept`` header (PS3.18 §8.7).

* Instances: ``multipart/related; type="application/dicom"`` (or ``*/*``), a single
  ``application/dicom`` body for one instance. Without ``transfer-syntax`` the files are sent as
  stored, as Orthanc does; ``*`` means as stored; another UID means transcoding.
* Frames and bulk data: ``application/octet-stream`` (multipart or single part). Without
  ``transfer-syntax`` frames are uncompressed (decoded when stored compressed); ``*`` means as
  stored. ``image/jpeg``, ``image/jls``… are served when the stored syntax is that one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from obelisk.dicomweb.media import (
    AS_STORED,
    DICOM,
    MULTIPART_RELATED,
    OCTET_STREAM,
    PIXEL_MEDIA_TYPES,
    MediaRange,
    is_known_transfer_syntax,
)
from obelisk.dicomweb.transfer import NotAcceptable, can_decode
from obelisk.errors import BadRequest
from obelisk.services.transcoding import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
)

_RAW_LITTLE_ENDIAN = {EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN}


@dataclass(frozen=True, slots=True)
class Choice:
    """``part_type`` of each part (or of the whole body when not ``multipart``)."""

    part_type: str
    #: A transfer syntax UID, or ``*`` for "as stored".
    transfer_syntax: str
    multipart: bool = True


def _accepted_ts(media: MediaRange) -> str | None:
    ts = media.transfer_syntax
    if ts is not None and not is_known_transfer_syntax(ts):
        raise BadRequest(f"Unknown transfer syntax in the Accept header: {ts}")
    return ts


def _wrapped(media: MediaRange) -> tuple[str, bool]:
    """(type of each part, multipart?) of one media range; ``*/*`` gets a multipart answer."""
    if media.media_type == MULTIPART_RELATED:
        return media.part_type or "*/*", True
    if media.media_type in ("*/*", "multipart/*"):
        return "*/*", True
    return media.media_type, False


def choose_instances(accept: Sequence[MediaRange], *, single: bool) -> Choice:
    for media in accept:
        part_type, multipart = _wrapped(media)
        if part_type not in ("*/*", "application/*", DICOM):
            continue
        if not multipart and not single and media.media_type != "*/*":
            continue  # several instances cannot travel in one application/dicom body
        return Choice(DICOM, _accepted_ts(media) or AS_STORED, multipart or not single)
    raise NotAcceptable('Only multipart/related; type="application/dicom" can be sent here')


def choose_frames(accept: Sequence[MediaRange], stored: str, *, single: bool) -> Choice:
    for media in accept:
        part_type, multipart = _wrapped(media)
        if not multipart and not single:
            continue
        ts = _accepted_ts(media)
        if part_type in ("*/*", "application/*"):
            return Choice(OCTET_STREAM, ts or AS_STORED, multipart)
        if part_type == OCTET_STREAM:
            wanted = ts or EXPLICIT_VR_LITTLE_ENDIAN
            if wanted in (AS_STORED, stored):
                return Choice(OCTET_STREAM, AS_STORED, multipart)
            if wanted in _RAW_LITTLE_ENDIAN and can_decode(stored):
                return Choice(OCTET_STREAM, EXPLICIT_VR_LITTLE_ENDIAN, multipart)
            continue
        stored_type = PIXEL_MEDIA_TYPES.get(stored)
        if stored_type == part_type and ts in (None, AS_STORED, stored):
            return Choice(part_type, AS_STORED, multipart)
    raise NotAcceptable(
        f"The frames are stored in {stored}; acceptable: "
        + ("application/octet-stream" if can_decode(stored) else f"transfer-syntax={stored}")
    )


def choose_bulk(accept: Sequence[MediaRange]) -> Choice:
    for media in accept:
        part_type, multipart = _wrapped(media)
        if part_type in ("*/*", "application/*", OCTET_STREAM):
            return Choice(OCTET_STREAM, AS_STORED, multipart)
    raise NotAcceptable("Bulk data is sent as application/octet-stream")
