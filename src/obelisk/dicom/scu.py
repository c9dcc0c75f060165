"""The DICOM client used by jobs and REST calls: pynetdicom behind the services' ``DicomClient``.

Every failure to associate or to get an answer becomes an ``ObeliskError`` with Orthanc's
``NetworkProtocol`` code, here at the one boundary that calls pynetdicom.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import Any

import pydicom
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext, build_context, build_role

from obelisk.core.levels import Level
from obelisk.dicom.contexts import (
    EXPLICIT_LE,
    IMPLICIT_LE,
    MAX_REQUESTED_CONTEXTS,
    MODALITY_WORKLIST_FIND,
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    VERIFICATION,
    quiet_pynetdicom,
    set_nodelay,
    storage_contexts,
)
from obelisk.dicom.status import store_and_answer
from obelisk.dicom.tls import DicomTls, tls_args
from obelisk.errors import BadFileFormat, ErrorCode, ObeliskError
from obelisk.services.dicom_client import MoveOutcome, Peer, Received
from obelisk.services.transcoding import SendTranscoding

#: Answers to C-FIND, C-MOVE and C-GET requests, by status class.
_PENDING = (0xFF00, 0xFF01)
_WARNING = 0xB000
_UNKNOWN_DESTINATION = 0xA801
#: The storage SOP classes a C-GET asks to receive (pynetdicom's usual 120, with the SCP role),
#: within pynetdicom's limit of proposed contexts, with room for the C-GET model's context.
GET_STORAGE_CLASSES = tuple(
    str(context.abstract_syntax) for context in StoragePresentationContexts
)[: MAX_REQUESTED_CONTEXTS - 2]


def network_error(details: str) -> ObeliskError:
    """Orthanc's ``NetworkProtocol`` error: the text is in ``Details`` (and in a job's
    ``ErrorDetails``), the message is the code's."""
    return ObeliskError(code=ErrorCode.NetworkProtocol, details=details, http_status=500)


def open_association(
    peer: Peer,
    contexts: Sequence[PresentationContext],
    *,
    tls: DicomTls,
    default_timeout: float,
    roles: Sequence[SCP_SCU_RoleSelectionNegotiation] = (),
    handlers: Sequence[tuple[evt.EventType, Any]] = (),
    unsupported: ErrorCode | None = None,
) -> Association:
    """An association from ``peer.local_aet`` to the peer, with its timeouts, ``TCP_NODELAY``
    and TLS when the modality wants it. ``unsupported``: the error when the peer accepts none
    of the contexts (pynetdicom then aborts the association); ``roles``: SCP/SCU role selection
    items; ``handlers``: more event handlers (the C-STOREs of a C-GET, reports)."""
    ae = AE(ae_title=peer.local_aet)
    timeout = peer.timeout or default_timeout
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    assoc = ae.associate(
        peer.host,
        peer.port,
        contexts=list(contexts),
        ae_title=peer.aet,
        evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay), *handlers],
        ext_neg=list(roles) or None,
        tls_args=tls_args(tls, peer),
    )
    if not assoc.is_established and assoc.is_aborted and unsupported is not None:
        raise ObeliskError(code=unsupported, details=f"Remote AET is {peer.aet}")
    if not assoc.is_established:
        raise network_error(
            f"Cannot associate with AET {peer.aet!r} at {peer.host}:{peer.port}"
            + (" (rejected)" if assoc.is_rejected else "")
        )
    return assoc


def accepted_syntaxes(assoc: Association, sop_class: str) -> list[str]:
    """The transfer syntaxes in which ``assoc`` may send a C-STORE of ``sop_class`` (the contexts
    accepted for it where this side is the SCU: its own requests, or the SCP role of C-GET)."""
    return [
        str(context.transfer_syntax[0])
        for context in assoc.accepted_contexts
        if context.abstract_syntax == sop_class and context.as_scu and context.transfer_syntax
    ]


class PynetdicomStoreSession:
    def __init__(
        self, assoc: Association, peer: Peer, transcoding: SendTranscoding | None = None
    ) -> None:
        self._assoc = assoc
        self._peer = peer
        self._transcoding = transcoding or SendTranscoding()

    def send(self, data: bytes, *, move_originator: tuple[str, int] | None = None) -> int:
        try:
            dataset: pydicom.Dataset = pydicom.dcmread(io.BytesIO(data))
        except Exception as exc:
            raise BadFileFormat("Cannot read a stored instance") from exc
        if not self._assoc.is_established:
            raise network_error(f"The association with {self._peer.aet} was lost")
        sop_class = str(dataset.get("SOPClassUID", ""))
        dataset = self._transcoding.outgoing(
            dataset,
            accepted_syntaxes(self._assoc, sop_class),
            allowed=self._peer.allow_transcoding,
            peer_aet=self._peer.aet,
        )
        try:
            answer = self._assoc.send_c_store(
                dataset,
                originator_aet=move_originator[0] if move_originator else None,
                originator_id=move_originator[1] if move_originator else None,
            )
        except (ValueError, AttributeError, RuntimeError) as exc:
            raise network_error(
                f"C-STORE SCU to AET {self._peer.aet!r} is impossible: {exc}"
            ) from exc
        if "Status" not in answer:
            raise network_error(f"No answer to C-STORE from AET {self._peer.aet!r}")
        return int(answer.Status)

    def close(self) -> None:
        if self._assoc.is_established:
            self._assoc.release()


class PynetdicomClient:
    """Opens one association per operation (per store job for C-STORE)."""

    def __init__(
        self,
        default_timeout: float = 10,
        tls: DicomTls | None = None,
        transcoding: SendTranscoding | None = None,
    ) -> None:
        quiet_pynetdicom()
        self._default_timeout = default_timeout
        self._tls = tls or DicomTls()
        self._transcoding = transcoding or SendTranscoding()

    def _associate(
        self,
        peer: Peer,
        contexts: Sequence[PresentationContext],
        unsupported: ErrorCode | None = None,
        *,
        roles: Sequence[SCP_SCU_RoleSelectionNegotiation] = (),
        handlers: Sequence[tuple[evt.EventType, Any]] = (),
    ) -> Association:
        return open_association(
            peer,
            contexts,
            tls=self._tls,
            default_timeout=self._default_timeout,
            roles=roles,
            handlers=handlers,
            unsupported=unsupported,
        )

    def echo(self, peer: Peer) -> None:
        assoc = self._associate(peer, [build_context(VERIFICATION)])
        try:
            answer = assoc.send_c_echo()
        finally:
            assoc.release()
        if int(answer.get("Status", -1)) != 0:
            raise network_error(f"C-ECHO to AET {peer.aet!r} failed")

    def open_store(self, peer: Peer, contexts: Sequence[tuple[str, str]]) -> PynetdicomStoreSession:
        proposed = storage_contexts(contexts, self._transcoding.proposed(peer.allow_transcoding))
        if not proposed:
            proposed = [build_context(VERIFICATION)]
        try:
            assoc = self._associate(peer, proposed, ErrorCode.NoPresentationContext)
        except ObeliskError as exc:
            if exc.code is not ErrorCode.NoPresentationContext:
                raise
            raise ObeliskError(  # Orthanc's words when the peer accepts no proposed context
                code=ErrorCode.NoPresentationContext,
                details=f'Unable to negotiate a presentation context with AET "{peer.aet}"',
            ) from exc
        return PynetdicomStoreSession(assoc, peer, self._transcoding)

    def find(self, peer: Peer, level: Level, identifier: pydicom.Dataset) -> list[pydicom.Dataset]:
        model = PATIENT_ROOT_FIND if level is Level.PATIENT else STUDY_ROOT_FIND
        return self._find(peer, model, identifier)

    def find_worklist(self, peer: Peer, identifier: pydicom.Dataset) -> list[pydicom.Dataset]:
        return self._find(peer, MODALITY_WORKLIST_FIND, identifier)

    def _find(self, peer: Peer, model: str, identifier: pydicom.Dataset) -> list[pydicom.Dataset]:
        assoc = self._associate(peer, [build_context(model)], ErrorCode.DicomFindUnavailable)
        answers: list[pydicom.Dataset] = []
        final = -1
        if not any(c.abstract_syntax == model for c in assoc.accepted_contexts):
            assoc.release()
            raise ObeliskError(
                code=ErrorCode.DicomFindUnavailable, details=f"Remote AET is {peer.aet}"
            )
        try:
            for status, found in assoc.send_c_find(identifier, model):
                code = int(status.get("Status", -1)) if status else -1
                if code in _PENDING and found is not None:
                    answers.append(found)
                else:
                    final = code
        finally:
            assoc.release()
        if final != 0:
            raise ObeliskError(
                f"C-FIND SCU to AET {peer.aet!r} failed (status 0x{final & 0xFFFF:04X})",
                code=ErrorCode.NetworkProtocol,
                http_status=422,
            )
        return answers

    def move(
        self, peer: Peer, level: Level, identifier: pydicom.Dataset, target_aet: str
    ) -> MoveOutcome:
        model = PATIENT_ROOT_MOVE if level is Level.PATIENT else STUDY_ROOT_MOVE
        assoc = self._associate(peer, [build_context(model)])
        try:
            answers = assoc.send_c_move(identifier, target_aet, model)
            return _retrieve_outcome(answers, "C-MOVE", peer)
        finally:
            assoc.release()

    def get(
        self, peer: Peer, level: Level, identifier: pydicom.Dataset, receive: Received
    ) -> MoveOutcome:
        """C-GET: Patient Root at the patient level, Study Root otherwise; the peer C-STOREs the
        instances on this association (storage contexts with the SCP role), each stored through
        the ingest as a C-STORE received by the server would be."""
        model = PATIENT_ROOT_GET if level is Level.PATIENT else STUDY_ROOT_GET
        syntaxes = list(dict.fromkeys([EXPLICIT_LE, IMPLICIT_LE, *receive.syntaxes]))
        contexts = [build_context(model)]
        contexts += [build_context(uid, syntaxes) for uid in GET_STORAGE_CLASSES]
        roles = [build_role(uid, scp_role=True) for uid in GET_STORAGE_CLASSES]

        def on_store(event: evt.Event) -> int:
            data = event.encoded_dataset(include_meta=True)
            return store_and_answer(receive.ingest, data, receive.origin)

        assoc = self._associate(peer, contexts, roles=roles, handlers=[(evt.EVT_C_STORE, on_store)])
        try:
            if not any(c.abstract_syntax == model and c.as_scu for c in assoc.accepted_contexts):
                raise network_error(f"AET {peer.aet!r} does not accept C-GET ({model})")
            answers = assoc.send_c_get(identifier, model)
            return _retrieve_outcome(answers, "C-GET", peer)
        finally:
            assoc.release()


def _retrieve_outcome(
    answers: Iterator[tuple[pydicom.Dataset, pydicom.Dataset | None]], operation: str, peer: Peer
) -> MoveOutcome:
    """The sub-operation counts of the final answer to a C-MOVE or C-GET; a failure status (or
    no final answer) raises ``NetworkProtocol``."""
    final = None
    for status, _ in answers:
        if status and int(status.get("Status", -1)) not in _PENDING:
            final = status
    code = int(final.get("Status", -1)) if final is not None else -1
    if final is None or code not in (0x0000, _WARNING):
        reason = " (unknown destination)" if code == _UNKNOWN_DESTINATION else ""
        raise ObeliskError(
            f"{operation} SCU to AET {peer.aet!r} failed with status 0x{code & 0xFFFF:04X}"
            + reason,
            code=ErrorCode.NetworkProtocol,
            http_status=422,
        )
    return MoveOutcome(
        completed=int(final.get("NumberOfCompletedSuboperations", 0) or 0),
        failed=int(final.get("NumberOfFailedSuboperations", 0) or 0),
        warning=int(final.get("NumberOfWarningSuboperations", 0) or 0),
    )
