"""Storage commitment over DIMSE (N-ACTION, N-EVENT-REPORT), with pynetdicom.

The server side (:class:`CommitmentHandlers`) translates pynetdicom's events into calls of
:class:`~obelisk.services.storage_commitment.StorageCommitmentService`; the client side
(:class:`PynetdicomCommitmentClient`) sends the requests and the reports, each on a new
association, as Orthanc does. Every failure to associate or to get a success answer becomes an
``ObeliskError`` with Orthanc's ``NetworkProtocol`` code here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pynetdicom import build_role, evt
from pynetdicom.association import Association
from pynetdicom.presentation import build_context

from obelisk.dicom.contexts import EXPLICIT_LE, IMPLICIT_LE, quiet_pynetdicom
from obelisk.dicom.scu import network_error, open_association
from obelisk.dicom.tls import DicomTls
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.services.dicom_client import Peer
from obelisk.services.storage_commitment import (
    Failure,
    Reference,
    StorageCommitmentService,
)

log = logging.getLogger("obelisk.dicom")

STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
#: The well-known SOP instance of the Storage Commitment Push Model.
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
REQUEST_STORAGE_COMMITMENT = 1  # N-ACTION action type
ALL_SUCCESS = 1  # N-EVENT-REPORT event types
FAILURES_EXIST = 2
_SUCCESS = 0x0000
_PROCESSING_FAILURE = 0x0110
_NO_SUCH_ACTION = 0x0123
_INVALID_ARGUMENT = 0x0115


# -- datasets -------------------------------------------------------------------------------------
def request_dataset(transaction_uid: str, references: Sequence[Reference]) -> Dataset:
    dataset = Dataset()
    dataset.TransactionUID = transaction_uid
    dataset.ReferencedSOPSequence = [_item(r) for r in references]
    return dataset


def report_dataset(
    transaction_uid: str, success: Sequence[Reference], failures: Sequence[Failure]
) -> Dataset:
    """The event information; a Failed SOP Sequence only when there are failures (Orthanc)."""
    dataset = Dataset()
    dataset.TransactionUID = transaction_uid
    dataset.ReferencedSOPSequence = [_item(r) for r in success]
    if failures:
        items = []
        for failure in failures:
            item = _item(failure.reference)
            item.FailureReason = failure.reason
            items.append(item)
        dataset.FailedSOPSequence = items
    return dataset


def _item(reference: Reference) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = reference.sop_class_uid
    item.ReferencedSOPInstanceUID = reference.sop_instance_uid
    return item


def references_in(dataset: Dataset, keyword: str) -> list[Reference]:
    """The items of a SOP sequence; ``ValueError`` when an item lacks a UID."""
    found = []
    for item in dataset.get(keyword, None) or []:
        sop_class = str(item.get("ReferencedSOPClassUID", "") or "")
        sop_instance = str(item.get("ReferencedSOPInstanceUID", "") or "")
        if not sop_class or not sop_instance:
            raise ValueError(f"An item of {keyword} lacks its SOP class or instance UID")
        found.append(Reference(sop_class, sop_instance))
    return found


def failures_in(dataset: Dataset) -> list[Failure]:
    failures = []
    items = dataset.get("FailedSOPSequence", None) or []
    for item, reference in zip(items, references_in(dataset, "FailedSOPSequence"), strict=True):
        reason = item.get("FailureReason", None)
        failures.append(Failure(reference, int(reason) if reason is not None else 0x0110))
    return failures


def _transaction_uid(dataset: Dataset) -> str:
    uid = str(dataset.get("TransactionUID", "") or "").strip()
    if not uid:
        raise ValueError("No Transaction UID")
    return uid


# -- server side ----------------------------------------------------------------------------------
class CommitmentHandlers:
    """pynetdicom's EVT_N_ACTION and EVT_N_EVENT_REPORT for the Storage Commitment Push Model.

    A peer not allowed to ask (no modality with its AET whose ``AllowNAction`` /
    ``AllowEventReport`` is true) has its association aborted, as Orthanc drops it.
    """

    def __init__(self, service: StorageCommitmentService) -> None:
        self._service = service

    def handlers(self) -> list[tuple[Any, Any]]:
        return [
            (evt.EVT_N_ACTION, self.on_n_action),
            (evt.EVT_N_EVENT_REPORT, self.on_n_event_report),
        ]

    def on_n_action(self, event: evt.Event) -> tuple[int, Dataset | None]:
        parties = _allowed_parties(event, self._service.may_request, "N-ACTION")
        if parties is None:
            return _PROCESSING_FAILURE, None
        calling, called = parties
        request = event.request
        if (
            str(getattr(request, "RequestedSOPClassUID", "")) != STORAGE_COMMITMENT
            or str(getattr(request, "RequestedSOPInstanceUID", "")) != STORAGE_COMMITMENT_INSTANCE
            or event.action_type != REQUEST_STORAGE_COMMITMENT
        ):
            log.warning("Only storage commitment is implemented for DICOM N-ACTION SCP")
            return _NO_SUCH_ACTION, None
        try:
            information = event.action_information
            transaction_uid = _transaction_uid(information)
            references = references_in(information, "ReferencedSOPSequence")
            if "ReferencedSOPSequence" not in information:
                raise ValueError("No ReferencedSOPSequence")
        except (ValueError, AttributeError, TypeError) as exc:
            log.warning("Cannot read a storage commitment request from %r: %s", calling, exc)
            return _INVALID_ARGUMENT, None
        try:
            self._service.accept_request(transaction_uid, references, calling, called)
        except ObeliskError as exc:
            log.error("Error while processing an incoming storage commitment request: %s", exc)
            return _PROCESSING_FAILURE, None
        return _SUCCESS, None

    def on_n_event_report(self, event: evt.Event) -> tuple[int, Dataset | None]:
        parties = _allowed_parties(event, self._service.may_report, "N-EVENT-REPORT")
        if parties is None:
            return _PROCESSING_FAILURE, None
        calling = parties[0]
        if event.event_type not in (ALL_SUCCESS, FAILURES_EXIST):
            return _INVALID_ARGUMENT, None
        try:
            information = event.event_information
            transaction_uid = _transaction_uid(information)
            success = references_in(information, "ReferencedSOPSequence")
            failures = failures_in(information)
        except (ValueError, AttributeError, TypeError) as exc:
            log.warning("Cannot read a storage commitment report from %r: %s", calling, exc)
            return _INVALID_ARGUMENT, None
        self._service.record_report(transaction_uid, calling, success, failures)
        return _SUCCESS, None


def _allowed_parties(
    event: evt.Event, allowed: Callable[[str, str], bool], request: str
) -> tuple[str, str] | None:
    """Calling and called AETs of a peer allowed to send ``request``; a peer that is not has
    its association aborted (no answer, as Orthanc) and gets ``None``."""
    calling, called, ip = _parties(event.assoc)
    if allowed(calling, ip):
        return calling, called
    log.warning("Rejected %s request from AET %r at %s", request, calling, ip)
    event.assoc.abort()
    return None


def _parties(assoc: Association) -> tuple[str, str, str]:
    """Calling AET, called AET and address of the peer of an established association."""
    return (
        str(assoc.requestor.ae_title).strip(),
        str(assoc.acceptor.ae_title).strip(),
        str(assoc.requestor.address),
    )


# -- client side ----------------------------------------------------------------------------------
class PynetdicomCommitmentClient:
    """Each request and each report on its own association."""

    def __init__(
        self,
        service: StorageCommitmentService | None = None,
        default_timeout: float = 10,
        tls: DicomTls | None = None,
    ) -> None:
        quiet_pynetdicom()
        self._service = service
        self._default_timeout = default_timeout
        self._tls = tls or DicomTls()

    def _associate(self, peer: Peer, *, as_scp: bool) -> Association:
        handlers: list[Any] = []
        if self._service is not None and not as_scp:
            # A peer may send its report on the association of the request while it is open.
            handlers += CommitmentHandlers(self._service).handlers()[1:]
        assoc = open_association(
            peer,
            [build_context(STORAGE_COMMITMENT, [EXPLICIT_LE, IMPLICIT_LE])],
            tls=self._tls,
            default_timeout=self._default_timeout,
            roles=[build_role(STORAGE_COMMITMENT, scp_role=True)] if as_scp else (),
            handlers=handlers,
        )
        if not any(c.abstract_syntax == STORAGE_COMMITMENT for c in assoc.accepted_contexts):
            assoc.release()
            raise ObeliskError(
                code=ErrorCode.NoPresentationContext,
                details=f'Unable to negotiate a presentation context with AET "{peer.aet}"',
            )
        return assoc

    def request(self, peer: Peer, transaction_uid: str, references: Sequence[Reference]) -> None:
        log.info(
            "Request to modality %r about storage commitment for %d instances, with "
            "transaction UID: %s",
            peer.aet,
            len(references),
            transaction_uid,
        )
        assoc = self._associate(peer, as_scp=False)
        try:
            status, _ = assoc.send_n_action(
                request_dataset(transaction_uid, references),
                REQUEST_STORAGE_COMMITMENT,
                STORAGE_COMMITMENT,
                STORAGE_COMMITMENT_INSTANCE,
            )
        finally:
            if assoc.is_established:
                assoc.release()
        _check(status, "N-ACTION", peer)

    def report(
        self,
        peer: Peer,
        transaction_uid: str,
        success: Sequence[Reference],
        failures: Sequence[Failure],
    ) -> None:
        log.info(
            "Reporting modality %r about storage commitment transaction: %s "
            "(%d successes, %d failures)",
            peer.aet,
            transaction_uid,
            len(success),
            len(failures),
        )
        assoc = self._associate(peer, as_scp=True)
        try:
            status, _ = assoc.send_n_event_report(
                report_dataset(transaction_uid, success, failures),
                FAILURES_EXIST if failures else ALL_SUCCESS,
                STORAGE_COMMITMENT,
                STORAGE_COMMITMENT_INSTANCE,
            )
        finally:
            if assoc.is_established:
                assoc.release()
        _check(status, "N-EVENT-REPORT", peer)


def _check(status: pydicom.Dataset, command: str, peer: Peer) -> None:
    if "Status" not in status:
        raise network_error(
            f"Storage commitment - Unable to read {command} response from AET: {peer.aet}"
        )
    if int(status.Status) != _SUCCESS:
        log.warning(
            "Storage commitment: %s answered status 0x%04X to the %s",
            peer.aet,
            int(status.Status) & 0xFFFF,
            command,
        )
        raise network_error(
            f"Storage commitment - The request cannot be handled by remote AET: {peer.aet}"
        )
