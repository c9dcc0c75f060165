"""DIMSE status codes for the outcomes of our services (one place, used by both receive paths)."""

from __future__ import annotations

import logging

from obelisk.errors import BadFileFormat, ObeliskError
from obelisk.services.ingest import IngestService, Origin, StoreStatus

log = logging.getLogger("obelisk.dicom")

SUCCESS = 0x0000
NOT_AUTHORIZED = 0x0124
#: Out of resources: Orthanc's answer when an instance cannot be stored or is filtered out.
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000

_STORE = {
    StoreStatus.Success: SUCCESS,
    StoreStatus.AlreadyStored: SUCCESS,
    StoreStatus.FilteredOut: OUT_OF_RESOURCES,
    StoreStatus.Failure: OUT_OF_RESOURCES,
}


def store_status(status: StoreStatus) -> int:
    return _STORE[status]


def store_and_answer(ingest: IngestService, data: bytes, origin: Origin) -> int:
    """Stores one received Part-10 file (durable before this returns); the C-STORE status."""
    try:
        result = ingest.store(data, origin)
    except BadFileFormat:
        return CANNOT_UNDERSTAND
    except ObeliskError as exc:
        log.warning("C-STORE refused: %s", exc)
        return OUT_OF_RESOURCES
    return store_status(result.status)
