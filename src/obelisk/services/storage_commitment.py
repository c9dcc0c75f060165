"""DICOM storage commitment (Storage Commitment Push Model), as Orthanc 1.10.1 does it.

As SCU, ``POST /modalities/{id}/storage-commitment`` (or a ``DicomModalityStore`` job with
``"StorageCommitment": true``, once its instances are sent) sends an N-ACTION with a new
transaction UID and keeps a *pending* report under that UID; the peer's N-EVENT-REPORT (on a new
association to our server) completes it. As SCP, an N-ACTION from a known modality is answered
at once and submitted as a ``StorageCommitmentScp`` job (:class:`StorageCommitmentScpJob`): it
looks up each referenced instance (stored, with the same SOP class?), then sends the
N-EVENT-REPORT to the modality over a new association. The job is persisted and resumed after a
restart like every job.

Reports live in memory, as in Orthanc: at most ``StorageCommitmentReportsSize`` of them (the
least recently used go first; 0 = no limit). The network library stays in the adapter
(``obelisk.dicom.storage_commitment``), which implements :class:`CommitmentClient`.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pydicom.uid

from obelisk.core.changes import MetadataType
from obelisk.core.levels import Level
from obelisk.errors import (
    BadFileFormat,
    ErrorCode,
    InexistentItem,
    ObeliskError,
    ParameterOutOfRange,
)
from obelisk.jobs.model import Job, JobContext, JobOutput, StepResult, StopReason
from obelisk.services.dicom_client import Peer
from obelisk.services.dicom_jobs import peer_json, peer_of
from obelisk.services.modalities import ModalityRegistry, RemoteModality
from obelisk.services.resources import ResourceService

log = logging.getLogger("obelisk.dicom")

#: Orthanc's job type of the SCP side.
SCP_TYPE = "StorageCommitmentScp"
#: Lookups of an SCP job step for about this long, so that the snapshot follows its progress.
STEP_SECONDS = 0.5
#: Submits a job to the jobs engine and answers its id (``JobEngine.submit``).
SubmitJob = Callable[[Job], str]


class FailureReason(enum.IntEnum):
    """Failure Reason (0008,1197) of a Failed SOP Sequence item (PS3.3 C.14.1.1)."""

    PROCESSING_FAILURE = 0x0110
    NO_SUCH_OBJECT_INSTANCE = 0x0112
    RESOURCE_LIMITATION = 0x0213
    REFERENCED_SOP_CLASS_NOT_SUPPORTED = 0x0122
    CLASS_INSTANCE_CONFLICT = 0x0119
    DUPLICATE_TRANSACTION_UID = 0x0131


#: Orthanc's descriptions of the failure reasons (``EnumerationToString``).
DESCRIPTIONS = {
    FailureReason.PROCESSING_FAILURE: "A general failure in processing the operation was "
    "encountered",
    FailureReason.NO_SUCH_OBJECT_INSTANCE: "One or more of the elements in the Referenced SOP "
    "Instance Sequence was not available",
    FailureReason.RESOURCE_LIMITATION: "The SCP does not currently have enough resources to "
    "store the requested SOP Instance(s)",
    FailureReason.REFERENCED_SOP_CLASS_NOT_SUPPORTED: "Storage Commitment has been requested for "
    "a SOP Instance with a SOP Class that is not supported by the SCP",
    FailureReason.CLASS_INSTANCE_CONFLICT: "The SOP Class of an element in the Referenced SOP "
    "Instance Sequence did not correspond to the SOP class registered for this SOP Instance at "
    "the SCP",
    FailureReason.DUPLICATE_TRANSACTION_UID: "The Transaction UID of the Storage Commitment "
    "Request is already in use",
}


def describe(reason: int) -> str:
    try:
        return DESCRIPTIONS[FailureReason(reason)]
    except ValueError:
        return f"Unknown failure reason 0x{reason & 0xFFFF:04X}"


@dataclass(frozen=True, slots=True)
class Reference:
    """One referenced SOP instance."""

    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True, slots=True)
class Failure:
    reference: Reference
    reason: int


class Status(enum.Enum):
    PENDING = "Pending"
    SUCCESS = "Success"
    FAILURE = "Failure"


@dataclass(slots=True)
class Report:
    """What a remote modality answered to one transaction (or ``PENDING`` until it does)."""

    remote_aet: str
    complete: bool = False
    success: list[Reference] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def status(self) -> Status:
        if not self.complete:
            return Status.PENDING
        return Status.FAILURE if self.failures else Status.SUCCESS


class ReportStore:
    """Reports by transaction UID, least recently used first out (``max_size`` 0 = no limit)."""

    def __init__(self, max_size: int) -> None:
        self._max_size = max(0, max_size)
        self._reports: OrderedDict[str, Report] = OrderedDict()
        self._lock = threading.Lock()

    def store(self, transaction_uid: str, report: Report) -> None:
        with self._lock:
            self._reports.pop(transaction_uid, None)
            if self._max_size and len(self._reports) >= self._max_size:
                self._reports.popitem(last=False)
            self._reports[transaction_uid] = report

    def get(self, transaction_uid: str) -> Report:
        with self._lock:
            report = self._reports.get(transaction_uid)
            if report is None:
                raise InexistentItem(
                    f"No storage commitment transaction with UID: {transaction_uid}"
                )
            self._reports.move_to_end(transaction_uid)
            return report

    def __len__(self) -> int:
        with self._lock:
            return len(self._reports)


class CommitmentClient(Protocol):
    """The DIMSE side of storage commitment; raises ``ObeliskError`` (``NetworkProtocol``)."""

    def request(self, peer: Peer, transaction_uid: str, references: Sequence[Reference]) -> None:
        """N-ACTION (Request Storage Commitment) on a new association; returns on success."""
        ...

    def report(
        self,
        peer: Peer,
        transaction_uid: str,
        success: Sequence[Reference],
        failures: Sequence[Failure],
    ) -> None:
        """N-EVENT-REPORT on a new association, this server acting as the SCP."""
        ...


class StorageCommitmentService:
    """Both sides of storage commitment; the DICOM adapter calls :meth:`accept_request` and
    :meth:`record_report`, the REST API :meth:`request`, :meth:`report` and :meth:`remove`."""

    def __init__(
        self,
        resources: ResourceService,
        registry: ModalityRegistry,
        *,
        local_aet: str,
        check_modality_host: bool,
        max_reports: int,
        submit: SubmitJob,
        client: CommitmentClient | None = None,
    ) -> None:
        self._resources = resources
        self._registry = registry
        self._local_aet = local_aet
        self._check_host = check_modality_host
        self.reports = ReportStore(max_reports)
        #: Plugged in by the DICOM adapter (``server.py`` wiring), as ``DicomNetwork.client``.
        self.client = client
        self._submit = submit

    def _client(self) -> CommitmentClient:
        if self.client is None:
            raise ObeliskError("DICOM networking is not set up", code=ErrorCode.NotImplemented)
        return self.client

    # -- SCU ------------------------------------------------------------------------------------
    def request(self, modality_name: str, body: dict[str, Any]) -> str:
        """``POST /modalities/{id}/storage-commitment``: the new transaction UID."""
        references = self.references_of(body)
        modality = self._registry.get(modality_name)
        timeout = body.get("Timeout", 0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise BadFileFormat('"Timeout" must be a number')
        transaction_uid = pydicom.uid.generate_uid(prefix=None)
        return self.request_references(modality, references, transaction_uid, float(timeout))

    def request_references(
        self,
        modality: RemoteModality,
        references: Sequence[Reference],
        transaction_uid: str,
        timeout: float = 0,
    ) -> str:
        return self.request_from(self._peer(modality, timeout), references, transaction_uid)

    def request_instances(self, peer: Peer, instances: Sequence[str], transaction_uid: str) -> None:
        """The trailing step of a ``DicomModalityStore`` job with ``StorageCommitment``: asks
        the modality it sent to (same local AET and timeout) to commit these instances."""
        references = [r for public_id in instances for r in self._instances_of(public_id)]
        self.request_from(peer, references, transaction_uid)

    def request_from(
        self, peer: Peer, references: Sequence[Reference], transaction_uid: str
    ) -> str:
        """N-ACTION to ``peer``, after the pending report is stored; answers the UID."""
        for reference in references:
            if not reference.sop_class_uid or not reference.sop_instance_uid:
                raise ParameterOutOfRange(
                    "The SOP class/instance UIDs cannot be empty, found: "
                    f'"{reference.sop_class_uid}" / "{reference.sop_instance_uid}"'
                )
        if not references:
            log.warning(
                "Issuing an outgoing storage commitment request that is empty: %s",
                transaction_uid,
            )
        # The pending report exists before the N-ACTION: the answer may come back first.
        self.reports.store(transaction_uid, Report(remote_aet=peer.aet))
        self._client().request(peer, transaction_uid, references)
        return transaction_uid

    def references_of(self, body: dict[str, Any]) -> list[Reference]:
        """The instances of a request body: ``Resources`` (Orthanc ids of any level) then
        ``DicomInstances`` (objects or ``[class, instance]`` pairs)."""
        if "Resources" not in body and "DicomInstances" not in body:
            raise BadFileFormat(
                "Empty storage commitment request, one of these fields is mandatory: "
                '"Resources" or "DicomInstances"'
            )
        references: list[Reference] = []
        if "Resources" in body:
            resources = body["Resources"]
            if not isinstance(resources, list):
                raise BadFileFormat(
                    'The "Resources" field must provide an array of Orthanc resources'
                )
            for item in resources:
                if not isinstance(item, str):
                    raise BadFileFormat(
                        f'The "Resources" field must provide an array of strings, found: {item}'
                    )
                references.extend(self._instances_of(item))
        if "DicomInstances" in body:
            instances = body["DicomInstances"]
            if not isinstance(instances, list):
                raise BadFileFormat(
                    'The "DicomInstances" field must provide an array of DICOM instances'
                )
            references.extend(_reference_of(item) for item in instances)
        return references

    def _instances_of(self, public_id: str) -> list[Reference]:
        resource = self._resources.get_any(public_id)
        instances = self._resources.instances_of(resource.level, public_id)
        classes = self._resources.index.metadata_of_many(
            [i.internal_id for i in instances], MetadataType.SopClassUid
        )
        found = []
        for instance in instances:
            sop_class = classes.get(instance.internal_id, "")
            sop_instance = instance.main_tags.get("SOPInstanceUID", "")
            if not sop_class or not sop_instance:
                raise ObeliskError(
                    "Cannot retrieve SOP Class/Instance UID of Orthanc instance: "
                    + instance.public_id,
                    code=ErrorCode.InternalError,
                )
            found.append(Reference(sop_class, sop_instance))
        return found

    def record_report(
        self,
        transaction_uid: str,
        remote_aet: str,
        success: Sequence[Reference],
        failures: Sequence[Failure],
    ) -> None:
        """An N-EVENT-REPORT received: it replaces the transaction's report (Orthanc keeps a
        report even for a transaction it did not start)."""
        report = Report(remote_aet, True, list(success), list(failures))
        self.reports.store(transaction_uid, report)
        log.info(
            "Storage commitment report from %s for %s: %d successes, %d failures",
            remote_aet,
            transaction_uid,
            len(success),
            len(failures),
        )

    def report(self, transaction_uid: str) -> Report:
        return self.reports.get(transaction_uid)

    def remove(self, transaction_uid: str) -> int:
        """Deletes the local instances a successful report acknowledges; answers how many."""
        report = self.reports.get(transaction_uid)
        if report.status is not Status.SUCCESS:
            raise ObeliskError(
                "Cannot remove DICOM instances after failure in storage commitment "
                f"transaction: {transaction_uid}",
                code=ErrorCode.BadSequenceOfCalls,
            )
        removed = 0
        for reference in report.success:
            for found in self._stored(reference.sop_instance_uid):
                self._resources.delete(Level.INSTANCE, found)
                removed += 1
        return removed

    # -- SCP ------------------------------------------------------------------------------------
    def may_request(self, calling_aet: str, ip: str) -> bool:
        """N-ACTION allowed: a modality with this AET (and host, with
        ``DicomCheckModalityHost``) whose ``AllowNAction`` is true."""
        return any(m.allow_n_action for m in self._modalities(calling_aet, ip))

    def may_report(self, calling_aet: str, ip: str) -> bool:
        """N-EVENT-REPORT allowed: as :meth:`may_request`, with ``AllowEventReport``."""
        return any(m.allow_event_report for m in self._modalities(calling_aet, ip))

    def _modalities(self, aet: str, ip: str) -> list[RemoteModality]:
        return self._registry.by_aet(aet, ip if self._check_host else None)

    def accept_request(
        self,
        transaction_uid: str,
        references: Sequence[Reference],
        remote_aet: str,
        called_aet: str,
    ) -> str:
        """An N-ACTION received: submits the ``StorageCommitmentScp`` job that looks the
        instances up and reports to the modality known by ``remote_aet``; answers the job id.
        Raises ``InexistentItem`` when there is no such modality (the N-ACTION then fails)."""
        modalities = self._registry.by_aet(remote_aet)
        if not modalities:
            raise InexistentItem(
                f"Unknown remote modality for storage commitment SCP: {remote_aet}"
            )
        modality = modalities[0]
        # Orthanc reports from the AET the N-ACTION called, with the modality's timeout.
        peer = Peer(
            aet=modality.aet,
            host=modality.host,
            port=modality.port,
            local_aet=called_aet or self._local_aet,
            timeout=modality.timeout,
            use_tls=modality.use_dicom_tls,
        )
        snapshot = {
            "RemoteModality": peer_json(peer),
            "CalledAet": called_aet,
            "TransactionUid": transaction_uid,
            "References": [[r.sop_class_uid, r.sop_instance_uid] for r in references],
        }
        return self._submit(self.scp_job(snapshot))

    def scp_job(self, snapshot: dict[str, Any]) -> StorageCommitmentScpJob:
        """A ``StorageCommitmentScp`` job, new or rebuilt from its snapshot."""
        return StorageCommitmentScpJob(self, snapshot)

    def send_report(
        self,
        peer: Peer,
        transaction_uid: str,
        success: Sequence[Reference],
        failures: Sequence[Failure],
    ) -> None:
        """N-EVENT-REPORT to ``peer``; raises ``ObeliskError`` (``NetworkProtocol``)."""
        self._client().report(peer, transaction_uid, success, failures)

    def lookup(self, reference: Reference) -> FailureReason | None:
        """``None`` when the instance is stored with this SOP class, else the failure reason
        (Orthanc re-reads the stored file)."""
        found = self._stored(reference.sop_instance_uid)
        if len(found) != 1:
            return FailureReason.NO_SUCH_OBJECT_INSTANCE
        try:
            dataset = self._resources.dataset(found[0], stop_before_pixels=True)
        except ObeliskError:
            return FailureReason.NO_SUCH_OBJECT_INSTANCE
        if str(dataset.get("SOPInstanceUID", "")) != reference.sop_instance_uid:
            return FailureReason.NO_SUCH_OBJECT_INSTANCE
        if str(dataset.get("SOPClassUID", "")) != reference.sop_class_uid:
            return FailureReason.CLASS_INSTANCE_CONFLICT
        return None

    def _stored(self, sop_instance_uid: str) -> list[str]:
        return [
            r.public_id
            for r in self._resources.lookup(sop_instance_uid)
            if r.level is Level.INSTANCE and r.main_tags.get("SOPInstanceUID") == sop_instance_uid
        ]

    def _peer(self, modality: RemoteModality, timeout: float) -> Peer:
        return Peer(
            aet=modality.aet,
            host=modality.host,
            port=modality.port,
            local_aet=modality.local_aet or self._local_aet,
            timeout=timeout or modality.timeout,
            use_tls=modality.use_dicom_tls,
        )


class StorageCommitmentScpJob:
    """Answers one N-ACTION (Orthanc's ``StorageCommitmentScp``): a setup step, one lookup
    per referenced instance, then the N-EVENT-REPORT; ``position`` counts the steps done, so a
    job resumed after a restart goes on with the next lookup (the results so far are in the
    snapshot). A report that cannot be sent fails the job (``NetworkProtocol``)."""

    type_name = SCP_TYPE

    def __init__(self, service: StorageCommitmentService, snapshot: dict[str, Any]) -> None:
        self._service = service
        self.peer = peer_of(snapshot["RemoteModality"])
        self.called_aet: str = snapshot.get("CalledAet", "")
        self.transaction_uid: str = snapshot["TransactionUid"]
        self.references = [Reference(str(c), str(i)) for c, i in snapshot["References"]]
        #: Steps done: 0, 1 (set up), 1 + lookups done, then ``len(references) + 2`` (reported).
        self.position = int(snapshot.get("Position", 0))
        #: The failure reason of each instance looked up so far, 0 when it is committed.
        self.results: list[int] = [int(r) for r in snapshot.get("Results", [])]

    @property
    def _steps(self) -> int:
        return len(self.references) + 2

    def step(self, context: JobContext) -> StepResult:
        count = len(self.references)
        if self.position <= count:  # the setup, then the lookups; the report in its own step
            # Orthanc's setup command creates a plugin's lookup handler; there is none here.
            self.position = max(1, self.position)
            deadline = time.monotonic() + STEP_SECONDS
            while self.position <= count and time.monotonic() < deadline:
                reason = self._service.lookup(self.references[self.position - 1])
                self.results.append(0 if reason is None else int(reason))
                self.position += 1
            return StepResult.cont()
        looked_up = list(zip(self.references, self.results, strict=True))
        success = [reference for reference, reason in looked_up if not reason]
        failures = [Failure(reference, reason) for reference, reason in looked_up if reason]
        self._service.send_report(self.peer, self.transaction_uid, success, failures)
        self.position = self._steps
        return StepResult.success()

    def progress(self) -> float:
        return min(1.0, self.position / self._steps)

    def content(self) -> dict[str, Any]:
        return {
            "CalledAet": self.called_aet,
            "Description": "",
            "RemoteAet": self.peer.aet,
            "TransactionUid": self.transaction_uid,
        }

    def serialize(self) -> dict[str, Any]:
        return {
            "Type": SCP_TYPE,
            "RemoteModality": peer_json(self.peer),
            "CalledAet": self.called_aet,
            "TransactionUid": self.transaction_uid,
            "References": [[r.sop_class_uid, r.sop_instance_uid] for r in self.references],
            "Position": self.position,
            "Results": self.results,
        }

    def reset(self) -> None:
        self.position = 0
        self.results = []

    def stop(self, reason: StopReason) -> None:
        return None

    def outputs(self) -> dict[str, JobOutput]:
        return {}


def _reference_of(item: Any) -> Reference:
    if isinstance(item, list):
        if len(item) != 2 or not all(isinstance(v, str) for v in item):
            raise BadFileFormat(
                "An instance entry must provide an array with 2 strings: "
                "SOP Class UID and SOP Instance UID"
            )
        return Reference(item[0], item[1])
    if isinstance(item, dict):
        sop_class, sop_instance = item.get("SOPClassUID"), item.get("SOPInstanceUID")
        if not isinstance(sop_class, str) or not isinstance(sop_instance, str):
            raise BadFileFormat(
                'An instance entry must provide an object with 2 string fiels: "SOPClassUID" '
                'and "SOPInstanceUID'
            )
        return Reference(sop_class, sop_instance)
    raise BadFileFormat(
        f"JSON array or object is expected to specify one instance to be queried, found: {item}"
    )
