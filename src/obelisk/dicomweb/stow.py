"""STOW-RS (PS3.18 §10.5): a multipart/related body of Part-10 files, stored through ingest.

Each part goes through :meth:`IngestService.store_async`, so de-duplication, group commit and
crash safety are those of every other entry point. The answer lists stored instances in
ReferencedSOPSequence and refused parts in FailedSOPSequence with PS3.4's failure reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from obelisk.core.parsing import parse_instance
from obelisk.dicomweb.dicom_json import JsonObject, attribute, from_text, tag_key
from obelisk.dicomweb.media import DICOM, parse_media_type
from obelisk.dicomweb.multipart import ReceivedPart, boundary_of, parse_parts
from obelisk.errors import BadRequest, ObeliskError
from obelisk.services.context import Services
from obelisk.services.ingest import Origin, StoreStatus

RETRIEVE_URL = 0x00081190
FAILED_SOP_SEQUENCE = 0x00081198
REFERENCED_SOP_SEQUENCE = 0x00081199
REFERENCED_SOP_CLASS = 0x00081150
REFERENCED_SOP_INSTANCE = 0x00081155
FAILURE_REASON = 0x00081197

#: PS3.4 Annex GG failure reasons.
PROCESSING_FAILURE = 0x0110
CANNOT_UNDERSTAND = 0xC000
STUDY_UID_MISMATCH = 0xA900


@dataclass(slots=True)
class StowOutcome:
    referenced: list[JsonObject] = field(default_factory=list)
    failed: list[JsonObject] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        """200 all stored, 202 some stored and some failed, 409 nothing stored."""
        if not self.referenced and self.failed:
            return 409
        return 202 if self.failed else 200

    def answer(self, study_url: str | None) -> JsonObject:
        body: JsonObject = {}
        if study_url:
            body[tag_key(RETRIEVE_URL)] = attribute("UR", [study_url])
        if self.failed:
            body[tag_key(FAILED_SOP_SEQUENCE)] = attribute("SQ", self.failed)
        body[tag_key(REFERENCED_SOP_SEQUENCE)] = attribute("SQ", self.referenced)
        return body


def check_content_type(header: str) -> str:
    """The boundary of a STOW-RS body; refuses anything but Part-10 parts (415)."""
    boundary = boundary_of(header)
    part_type = parse_media_type(header).part_type
    if part_type and part_type != DICOM:
        raise BadRequest(
            f'Only multipart/related; type="application/dicom" is supported, not {part_type}',
            http_status=415,
        )
    return boundary


async def store(
    services: Services,
    content_type_header: str,
    body: bytes,
    study_uid: str | None,
    base_url: str,
    origin: Origin,
) -> tuple[StowOutcome, str | None]:
    """Stores every part; returns the outcome and the study URL for the answer."""
    parts = parse_parts(body, check_content_type(content_type_header))
    if not parts:
        raise BadRequest("The STOW-RS body contains no part")
    outcome = StowOutcome()
    studies: set[str] = set()
    for part in parts:
        await _store_part(services, part, study_uid, base_url, origin, outcome, studies)
    only = study_uid or (next(iter(studies)) if len(studies) == 1 else None)
    return outcome, f"{base_url}/studies/{only}" if only else None


async def _store_part(
    services: Services,
    part: ReceivedPart,
    study_uid: str | None,
    base_url: str,
    origin: Origin,
    outcome: StowOutcome,
    studies: set[str],
) -> None:
    if part.media_type not in ("", DICOM):
        outcome.failed.append(_failure("", "", CANNOT_UNDERSTAND))
        return
    try:
        parsed = parse_instance(part.data)
    except ObeliskError:
        outcome.failed.append(_failure("", "", CANNOT_UNDERSTAND))
        return
    sop_class, sop_instance = parsed.sop_class_uid, parsed.sop_instance_uid
    if study_uid is not None and parsed.study_uid != study_uid:
        outcome.failed.append(_failure(sop_class, sop_instance, STUDY_UID_MISMATCH))
        return
    try:
        result = await services.ingest.store_async(part.data, origin)
    except ObeliskError:
        outcome.failed.append(_failure(sop_class, sop_instance, PROCESSING_FAILURE))
        return
    if result.status not in (StoreStatus.Success, StoreStatus.AlreadyStored):
        outcome.failed.append(_failure(sop_class, sop_instance, PROCESSING_FAILURE))
        return
    studies.add(parsed.study_uid)
    item = _reference(sop_class, sop_instance)
    item[tag_key(RETRIEVE_URL)] = attribute(
        "UR",
        [
            f"{base_url}/studies/{parsed.study_uid}/series/{parsed.series_uid}"
            f"/instances/{sop_instance}"
        ],
    )
    outcome.referenced.append(dict(sorted(item.items())))


def _reference(sop_class: str, sop_instance: str) -> JsonObject:
    return {
        tag_key(REFERENCED_SOP_CLASS): from_text(REFERENCED_SOP_CLASS, sop_class),
        tag_key(REFERENCED_SOP_INSTANCE): from_text(REFERENCED_SOP_INSTANCE, sop_instance),
    }


def _failure(sop_class: str, sop_instance: str, reason: int) -> JsonObject:
    item = _reference(sop_class, sop_instance)
    item[tag_key(FAILURE_REASON)] = attribute("US", [reason])
    return dict(sorted(item.items()))
