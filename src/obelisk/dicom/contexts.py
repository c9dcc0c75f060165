"""Presentation contexts and socket settings shared by the DICOM server and client."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Sequence

from pynetdicom import _config, evt
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.service_class import ServiceClass
from pynetdicom.sop_class import _STORAGE_CLASSES, uid_to_service_class

VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
STORAGE_SERVICE_CLASS = "1.2.840.10008.4.2"
STORAGE_UIDS = frozenset(str(uid) for uid in _STORAGE_CLASSES.values())
#: pynetdicom refuses to propose more than this many contexts in one association.
MAX_REQUESTED_CONTEXTS = 128


def quiet_pynetdicom() -> None:
    """No per-PDU log handlers (they cost ~12 % of the receive path); warnings still show."""
    _config.LOG_HANDLER_LEVEL = "none"
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


class StorageAbstractSyntaxes:
    """The abstract syntaxes the C-STORE SCP takes as storage, decided when an association is
    requested: every storage SOP class pynetdicom knows and, in Orthanc's promiscuous mode
    (``UnknownSopClassAccepted``), every SOP class that pynetdicom does not know as another
    service (as Orthanc accepts every context it has not accepted for another service)."""

    def __init__(self, unknown_accepted: bool) -> None:
        self.unknown_accepted = unknown_accepted

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, str) or not uid:
            return False
        if uid in STORAGE_UIDS:
            return True
        return self.unknown_accepted and is_unknown_sop_class(uid)


def is_unknown_sop_class(uid: str) -> bool:
    """A SOP class pynetdicom serves with no service (neither storage nor anything else)."""
    return uid not in STORAGE_UIDS and uid_to_service_class(uid) is ServiceClass


def set_nodelay(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: DIMSE messages are small request/answer pairs; without
    TCP_NODELAY each waits for the peer's delayed ACK (~40 ms)."""
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def storage_contexts(
    pairs: Iterable[tuple[str, str]], also: Sequence[str] = (EXPLICIT_LE, IMPLICIT_LE)
) -> list[PresentationContext]:
    """One context per SOP class and transfer syntax, as Orthanc proposes them (so the peer may
    accept several syntaxes of a class): every stored (SOP class, syntax) pair first, then each
    syntax of ``also`` for each class (uncompressed, and the preferred syntax when transcoding)
    while there is room."""
    stored: dict[tuple[str, str], None] = {}
    classes: set[str] = set()
    for sop_class, syntax in pairs:
        if sop_class:
            classes.add(sop_class)
            if syntax:
                stored[(sop_class, syntax)] = None
    extra = {(sop_class, syntax): None for sop_class in sorted(classes) for syntax in also}
    wanted = [*sorted(stored), *(pair for pair in extra if pair not in stored)]
    return [build_context(c, s) for c, s in wanted[:MAX_REQUESTED_CONTEXTS]]
