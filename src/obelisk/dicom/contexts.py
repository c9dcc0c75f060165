"""Presentation contexts and socket settings shared by the DICOM server and client."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from typing import Any

from pynetdicom import _config, evt
from pynetdicom.presentation import PresentationContext, build_context

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
#: Orthanc option → the transfer syntaxes it enables on the server.
OPTIONAL_SYNTAXES = {
    "DeflatedTransferSyntaxAccepted": (DEFLATED,),
    "JpegTransferSyntaxAccepted": ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"),
    "JpegLosslessTransferSyntaxAccepted": (
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
    ),
    "Jpeg2000TransferSyntaxAccepted": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
    "JpipTransferSyntaxAccepted": ("1.2.840.10008.1.2.4.94", "1.2.840.10008.1.2.4.95"),
    "RleTransferSyntaxAccepted": ("1.2.840.10008.1.2.5",),
    "Mpeg2TransferSyntaxAccepted": ("1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101"),
    "Mpeg4TransferSyntaxAccepted": (
        "1.2.840.10008.1.2.4.102",
        "1.2.840.10008.1.2.4.103",
        "1.2.840.10008.1.2.4.104",
        "1.2.840.10008.1.2.4.105",
        "1.2.840.10008.1.2.4.106",
    ),
    "H265TransferSyntaxAccepted": ("1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108"),
}
#: pynetdicom refuses to propose more than this many contexts in one association.
MAX_REQUESTED_CONTEXTS = 128


def quiet_pynetdicom() -> None:
    """No per-PDU log handlers (they cost ~12 % of the receive path); warnings still show."""
    _config.LOG_HANDLER_LEVEL = "none"
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def accepted_syntaxes(values: dict[str, Any]) -> list[str]:
    """The transfer syntaxes the server accepts for storage, as the settings say."""
    explicit = [str(s) for s in values.get("AcceptedTransferSyntaxes") or []]
    if explicit:
        return explicit
    syntaxes = [EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE]
    for option, uids in OPTIONAL_SYNTAXES.items():
        if values.get(option, True):
            syntaxes.extend(uids)
    return syntaxes


def set_nodelay(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: DIMSE messages are small request/answer pairs; without
    TCP_NODELAY each waits for the peer's delayed ACK (~40 ms)."""
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def storage_contexts(pairs: Iterable[tuple[str, str]]) -> list[PresentationContext]:
    """One context per SOP class, proposing its stored syntaxes plus the uncompressed ones."""
    by_class: dict[str, list[str]] = {}
    for sop_class, syntax in pairs:
        if not sop_class:
            continue
        syntaxes = by_class.setdefault(sop_class, [])
        for candidate in (syntax, EXPLICIT_LE, IMPLICIT_LE):
            if candidate and candidate not in syntaxes:
                syntaxes.append(candidate)
    contexts = [build_context(c, s) for c, s in sorted(by_class.items())]
    return contexts[:MAX_REQUESTED_CONTEXTS]
