"""The direct path for C-STORE, C-ECHO and C-FIND: a thread per association, blocking reads.

pynetdicom's reactors poll (1 ms sleeps, two threads per association) and cost more CPU than the
ingest itself (docs/dicom-network.md). Associations that only propose storage, verification and
C-FIND contexts — what storescu, findscu, modalities and C-MOVE sub-operations send — are served
here instead: PDUs are read through a buffer filled by large ``recv_into`` calls, PDV fragments
are kept as memoryviews, and the received dataset bytes are joined once behind a Part-10 header
and handed to the ingest service, which answers only when the instance is durable. Everything
else (C-MOVE, C-GET, role selection, user identity) goes to pynetdicom.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
from collections.abc import Container
from dataclasses import dataclass
from typing import Protocol

import pydicom
from pynetdicom.dsutils import decode, encode

from obelisk.core.levels import Level
from obelisk.dicom import pdu
from obelisk.dicom.status import NOT_AUTHORIZED, store_and_answer
from obelisk.errors import ObeliskError
from obelisk.services.ingest import IngestService, Origin
from obelisk.services.modalities import DicomRequest
from obelisk.services.storage_acceptance import StorageAcceptance

log = logging.getLogger("obelisk.dicom")

VERIFICATION = "1.2.840.10008.1.1"
#: Patient Root and Study Root C-FIND.
FIND_MODELS = {"1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.2.2.1"}
IMPLICIT_LE = "1.2.840.10008.1.2"
_UNCOMPRESSED = (IMPLICIT_LE, "1.2.840.10008.1.2.1")
C_FIND_RQ = 0x0020
C_CANCEL_RQ = 0x0FFF
PENDING = 0xFF00
#: User information items that need pynetdicom (role selection, extended negotiation, identity).
_NEEDS_FULL_STACK = {0x54, 0x56, 0x57, 0x58}
_MAX_PDU_ACCEPTED = 64 << 20
_READ_CHUNK = 256 << 10


class ConnectionClosed(Exception):
    pass


class AccessCheck(Protocol):
    def __call__(self, calling_aet: str, ip: str) -> frozenset[DicomRequest] | None:
        """What this peer may ask; ``None`` = refuse the association."""
        ...


class FindAnswers(Protocol):
    def __call__(self, level: Level, identifier: pydicom.Dataset) -> list[pydicom.Dataset]: ...


@dataclass(frozen=True)
class DirectEndpoint:
    aet: str
    check_called_aet: bool
    max_pdu: int
    #: The accepted transfer syntaxes (read when an association is negotiated).
    acceptance: StorageAcceptance
    ingest: IngestService
    access: AccessCheck
    find: FindAnswers
    timeout: float | None


def serves_directly(request: pdu.AssociateRequest, storage_classes: Container[str]) -> bool:
    if request.extra_user_items & _NEEDS_FULL_STACK:
        return False
    return all(
        abstract == VERIFICATION or abstract in FIND_MODELS or abstract in storage_classes
        for abstract, _ in request.contexts.values()
    )


class PduReader:
    """Reads PDUs through a buffer, taking whatever the socket holds in one ``recv_into``.

    A sender's 16 KB PDUs arrive back to back: read one by one (a header, then a body), a 130 KB
    instance costs ~18 ``recv`` calls, each releasing and taking back the GIL — under two
    associations that churn was most of the server's system time (170 futex calls per instance,
    against Orthanc's 16). Read in 256 KB gulps, it costs a few.
    """

    def __init__(self, sock: socket.socket, chunk: int = _READ_CHUNK) -> None:
        self._sock = sock
        self._chunk = chunk
        self._buffer = bytearray(chunk)
        self._start = 0  # first unread byte
        self._end = 0  # end of the received bytes

    def _fill(self, wanted: int) -> None:
        """Until at least ``wanted`` unread bytes are buffered."""
        while self._end - self._start < wanted:
            if self._start + wanted > len(self._buffer):
                # Move the unread bytes to a buffer large enough (the PDUs handed out keep
                # their own copies, so the old buffer may go).
                unread = self._buffer[self._start : self._end]
                self._buffer = bytearray(max(self._chunk, wanted))
                self._buffer[: len(unread)] = unread
                self._start, self._end = 0, len(unread)
            count = self._sock.recv_into(memoryview(self._buffer)[self._end :])
            if count == 0:
                raise ConnectionClosed
            self._end += count

    def read(self) -> tuple[int, bytearray]:
        """The next PDU: its type and its body (a copy of its own)."""
        self._fill(6)
        pdu_type, length = pdu.header(self._buffer[self._start : self._start + 6])
        if length > _MAX_PDU_ACCEPTED:
            raise pdu.ProtocolError(f"PDU of {length} bytes")
        self._fill(6 + length)
        body = self._buffer[self._start + 6 : self._start + 6 + length]
        self._start += 6 + length
        if self._start == self._end:
            self._start = self._end = 0
        return pdu_type, body


class DirectAssociation:
    """Serves one association whose A-ASSOCIATE-RQ (already read) passed :func:`serves_directly`."""

    def __init__(
        self,
        sock: socket.socket,
        ip: str,
        request: pdu.AssociateRequest,
        endpoint: DirectEndpoint,
    ) -> None:
        self._sock = sock
        self._request = request
        self._endpoint = endpoint
        self._origin = Origin(
            kind="DicomProtocol",
            remote_aet=request.calling_aet,
            called_aet=request.called_aet,
            remote_ip=ip,
        )
        self._ip = ip
        self._syntaxes: dict[int, str] = {}
        self._allowed: frozenset[DicomRequest] = frozenset()

    def run(self) -> None:
        try:
            if self._negotiate():
                self._serve()
        except TimeoutError:  # idle for DicomScpTimeout
            self._send(pdu.abort())
        except (ConnectionClosed, OSError):
            pass
        except pdu.ProtocolError as exc:
            log.warning("Aborting the association with %s: %s", self._request.calling_aet, exc)
            self._send(pdu.abort())

    def _send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendall(data)

    def _negotiate(self) -> bool:
        endpoint, request = self._endpoint, self._request
        if endpoint.check_called_aet and request.called_aet != endpoint.aet:
            self._send(pdu.associate_rj(1, 1, 7))
            return False
        allowed = endpoint.access(request.calling_aet, self._ip)
        if allowed is None:
            log.warning(
                "Refusing an association from unknown AET %r at %s", request.calling_aet, self._ip
            )
            self._send(pdu.associate_rj(1, 1, 3))
            return False
        self._allowed = allowed
        results: dict[int, tuple[int, str]] = {}
        for context_id, (abstract, proposed) in request.contexts.items():
            if abstract == VERIFICATION or abstract in FIND_MODELS:
                chosen = next((s for s in proposed if s in _UNCOMPRESSED), "")
            else:
                chosen = next((s for s in proposed if endpoint.acceptance.accepts_syntax(s)), "")
            results[context_id] = (0, chosen) if chosen else (4, "")
            if chosen:
                self._syntaxes[context_id] = chosen
        self._send(
            pdu.associate_ac(
                request,
                results,
                max_pdu=endpoint.max_pdu,
                implementation_uid=pdu.IMPLEMENTATION_CLASS_UID,
                version_name=pdu.IMPLEMENTATION_VERSION,
            )
        )
        return True

    def _serve(self) -> None:
        command: list[memoryview] = []
        dataset: list[memoryview] = []
        fields: dict[int, bytes] | None = None
        context_id = 0
        reader = PduReader(self._sock)
        while True:
            pdu_type, body = reader.read()
            if pdu_type == pdu.RELEASE_RQ:
                self._send(pdu.release_rp())
                return
            if pdu_type == pdu.ABORT:
                return
            if pdu_type != pdu.P_DATA_TF:
                raise pdu.ProtocolError(f"Unexpected PDU type {pdu_type}")
            for pdv_context, control, fragment in pdu.iter_pdvs(memoryview(body)):
                if control & 0x01:  # command fragment
                    command.append(fragment)
                    if not control & 0x02:
                        continue
                    context_id = pdv_context
                    fields = pdu.parse_command(b"".join(command))
                    command = []
                    if pdu.us(fields.get(pdu.COMMAND_FIELD, b"")) == C_CANCEL_RQ:
                        fields = None  # answers are sent at once: nothing left to cancel
                    elif pdu.us(fields.get(pdu.DATA_SET_TYPE, b"")) == pdu.NO_DATA_SET:
                        self._answer(context_id, fields, None)
                        fields = None
                else:
                    dataset.append(fragment)
                    if control & 0x02:
                        if fields is None:
                            raise pdu.ProtocolError("A data set without its command")
                        self._answer(context_id, fields, dataset)
                        dataset, fields = [], None

    def _answer(
        self, context_id: int, fields: dict[int, bytes], data: list[memoryview] | None
    ) -> None:
        command_field = pdu.us(fields.get(pdu.COMMAND_FIELD, b""))
        message_id = pdu.us(fields.get(pdu.MESSAGE_ID, b""))
        sop_class = fields.get(pdu.AFFECTED_SOP_CLASS, b"")
        if command_field == pdu.C_ECHO_RQ:
            status = 0 if DicomRequest.ECHO in self._allowed else NOT_AUTHORIZED
            response = pdu.response_command(0x8030, message_id, status, sop_class, None)
        elif command_field == pdu.C_STORE_RQ and data is not None:
            sop_instance = fields.get(pdu.AFFECTED_SOP_INSTANCE, b"")
            status = self._store(context_id, sop_class, sop_instance, data)
            response = pdu.response_command(0x8001, message_id, status, sop_class, sop_instance)
        elif command_field == C_FIND_RQ and data is not None:
            status = self._find(context_id, message_id, sop_class, data)
            response = pdu.response_command(0x8020, message_id, status, sop_class, None)
        else:
            raise pdu.ProtocolError(f"Unsupported DIMSE command 0x{command_field:04X}")
        self._send(pdu.p_data(context_id, response))

    def _find(
        self, context_id: int, message_id: int, sop_class: bytes, data: list[memoryview]
    ) -> int:
        """Sends the pending answers; returns the final status."""
        if DicomRequest.FIND not in self._allowed:
            log.warning("Refused C-FIND from AET %r", self._request.calling_aet)
            return NOT_AUTHORIZED
        implicit = self._syntaxes.get(context_id) == IMPLICIT_LE
        try:
            identifier = decode(io.BytesIO(b"".join(data)), implicit, True)
            level = Level.parse(str(identifier.QueryRetrieveLevel))
        except Exception:
            return 0xC000  # unable to process: no or bad QueryRetrieveLevel
        try:
            answers = self._endpoint.find(level, identifier)
        except ObeliskError as exc:
            log.warning("C-FIND failed: %s", exc)
            return 0xC000
        pending = pdu.response_command(0x8020, message_id, PENDING, sop_class, None, dataset=True)
        for answer in answers:
            encoded = encode(answer, implicit, True) or b""
            self._send(pdu.p_data(context_id, pending) + self._dataset_pdus(context_id, encoded))
        return 0x0000

    def _dataset_pdus(self, context_id: int, data: bytes) -> bytes:
        """The dataset in P-DATA-TF PDUs no larger than the peer accepts."""
        size = self._request.max_pdu - 6 if self._request.max_pdu > 6 else len(data) or 1
        chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        return b"".join(
            pdu.p_data(context_id, chunk, command=False, last=n == len(chunks) - 1)
            for n, chunk in enumerate(chunks)
        )

    def _store(
        self, context_id: int, sop_class: bytes, sop_instance: bytes, data: list[memoryview]
    ) -> int:
        if DicomRequest.STORE not in self._allowed:
            log.warning("Refused C-STORE from AET %r", self._request.calling_aet)
            return NOT_AUTHORIZED
        syntax = self._syntaxes.get(context_id)
        if syntax is None:
            raise pdu.ProtocolError(f"No accepted presentation context {context_id}")
        meta = pdu.file_meta(
            pdu.uid_text(sop_class), pdu.uid_text(sop_instance), syntax, self._request.calling_aet
        )
        return store_and_answer(self._endpoint.ingest, b"".join([meta, *data]), self._origin)
