"""DICOM network jobs: C-STORE SCU (``DicomModalityStore``), C-MOVE SCU (``DicomMoveScu``) and
C-GET SCU (``DicomGetScu``, as in Orthanc 1.11).

All are step machines like every job: a step sends instances (or retrieves answers) for about half
a second and the snapshot records how far it went, so a job resumed after a restart goes on with
the next instance. The association of a store job stays open across steps and is closed when the
job leaves the Running state. A store job with ``StorageCommitment`` has a trailing step, as in
Orthanc: once every instance is sent, an N-ACTION asks the modality to commit them all (on a new
association); the job does not wait for the modality's report, which arrives at
``/storage-commitment/{uid}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pydicom
import pydicom.uid

from obelisk.core.dicom_json import full_tags, simplify
from obelisk.core.levels import Level
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.jobs.model import JobContext, JobOutput, StepResult, StopReason
from obelisk.services.dicom_client import DicomClient, MoveOutcome, Peer, Received, StoreSession

log = logging.getLogger("obelisk.dicom")

STEP_SECONDS = 0.5
STORE_TYPE = "DicomModalityStore"
MOVE_TYPE = "DicomMoveScu"
GET_TYPE = "DicomGetScu"

#: Reads the DICOM file of an instance (public id → bytes).
ReadInstance = Callable[[str], bytes]
#: Gives the DICOM client when a step needs it (jobs may be rebuilt before it is plugged in).
ClientProvider = Callable[[], DicomClient]
#: Requests storage commitment of instances (public ids) from a peer under a transaction UID
#: (``StorageCommitmentService.request_instances``); raises ``ObeliskError``.
RequestCommitment = Callable[[Peer, Sequence[str], str], None]
#: Where the instances of a C-GET go, for a peer (the ingest, with an origin naming the peer).
ReceiverOf = Callable[[Peer], Received]


def peer_json(peer: Peer) -> dict[str, Any]:
    return {
        "AET": peer.aet,
        "Host": peer.host,
        "Port": peer.port,
        "LocalAet": peer.local_aet,
        "Timeout": peer.timeout,
        "UseDicomTls": peer.use_tls,
        "AllowTranscoding": peer.allow_transcoding,
    }


def peer_of(snapshot: dict[str, Any]) -> Peer:
    return Peer(
        snapshot["AET"],
        snapshot["Host"],
        int(snapshot["Port"]),
        snapshot["LocalAet"],
        float(snapshot["Timeout"]),
        bool(snapshot.get("UseDicomTls", False)),
        bool(snapshot.get("AllowTranscoding", True)),
    )


class StoreScuJob:
    """Sends instances to a modality over one association (Orthanc's ``DicomModalityStore``)."""

    type_name = STORE_TYPE

    def __init__(
        self,
        client: ClientProvider,
        read: ReadInstance,
        snapshot: dict[str, Any],
        commit: RequestCommitment | None = None,
    ) -> None:
        self._client = client
        self._read = read
        self._commit = commit
        self._session: StoreSession | None = None
        self.peer = peer_of(snapshot["Peer"])
        self.instances: list[str] = list(snapshot["Instances"])
        self.contexts = [(str(c[0]), str(c[1])) for c in snapshot["Contexts"]]
        self.parents: list[str] = list(snapshot.get("ParentResources", []))
        self.description: str = snapshot.get("Description", "REST API")
        self.permissive = bool(snapshot.get("Permissive", False))
        self.originator: tuple[str, int] | None = (
            (snapshot["MoveOriginatorAet"], int(snapshot["MoveOriginatorID"]))
            if snapshot.get("MoveOriginatorAet")
            else None
        )
        self.position = int(snapshot.get("Position", 0))
        self.failed: list[str] = list(snapshot.get("FailedInstances", []))
        self.storage_commitment = bool(snapshot.get("StorageCommitment", False))
        #: Kept across restarts and resubmits (a resubmitted job asks again under the same UID).
        self.transaction_uid: str = snapshot.get("TransactionUid") or (
            pydicom.uid.generate_uid(prefix=None) if self.storage_commitment else ""
        )
        self.commitment_requested = bool(snapshot.get("CommitmentRequested", False))

    def step(self, context: JobContext) -> StepResult:
        if self.position >= len(self.instances) and self.storage_commitment:
            return self._request_commitment()
        deadline = time.monotonic() + STEP_SECONDS
        while self.position < len(self.instances) and time.monotonic() < deadline:
            instance = self.instances[self.position]
            try:
                if self._session is None:
                    self._session = self._client().open_store(self.peer, self.contexts)
                status = self._session.send(self._read(instance), move_originator=self.originator)
                if status not in (0x0000, 0xB000, 0xB006, 0xB007):
                    raise ObeliskError(
                        f"C-STORE of instance {instance} to {self.peer.aet} answered status "
                        f"0x{status:04X}",
                        code=ErrorCode.NetworkProtocol,
                    )
            except ObeliskError:
                self._close()
                if not self.permissive:
                    raise
                self.failed.append(instance)
            self.position += 1
        if self.position < len(self.instances) or self.storage_commitment:
            return StepResult.cont()  # the N-ACTION, if any, in a step of its own
        self._close()
        return StepResult.success()

    def _request_commitment(self) -> StepResult:
        """The trailing step: N-ACTION for every instance of the job (sent or failed, as
        Orthanc), none when there is no instance. A refusal fails the job unless permissive."""
        self._close()
        if self.instances and not self.commitment_requested:
            try:
                if self._commit is None:
                    raise ObeliskError(
                        "Storage commitment is not available", code=ErrorCode.NotImplemented
                    )
                self._commit(self.peer, self.instances, self.transaction_uid)
            except ObeliskError as exc:
                if not self.permissive:
                    raise
                log.warning("Ignoring an error in a permissive job: %s", exc)
            self.commitment_requested = True
        return StepResult.success()

    def _close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.close()

    def progress(self) -> float:
        if not self.instances:
            return 1.0
        if not self.storage_commitment:
            return self.position / len(self.instances)
        # The N-ACTION counts as one more step.
        return (self.position + self.commitment_requested) / (len(self.instances) + 1)

    def content(self) -> dict[str, Any]:
        content: dict[str, Any] = {
            "Description": self.description,
            "FailedInstancesCount": len(self.failed),
            "InstancesCount": len(self.instances),
            "LocalAet": self.peer.local_aet,
            "ParentResources": self.parents,
            "RemoteAet": self.peer.aet,
        }
        if self.storage_commitment:
            content["StorageCommitmentTransactionUID"] = self.transaction_uid
        return content

    def serialize(self) -> dict[str, Any]:
        return {
            "Type": STORE_TYPE,
            "Peer": peer_json(self.peer),
            "Instances": self.instances,
            "Contexts": [list(c) for c in self.contexts],
            "ParentResources": self.parents,
            "Description": self.description,
            "Permissive": self.permissive,
            "MoveOriginatorAet": self.originator[0] if self.originator else "",
            "MoveOriginatorID": self.originator[1] if self.originator else 0,
            "Position": self.position,
            "FailedInstances": self.failed,
            "StorageCommitment": self.storage_commitment,
            "TransactionUid": self.transaction_uid,
            "CommitmentRequested": self.commitment_requested,
        }

    def reset(self) -> None:
        self._close()
        self.position = 0
        self.failed = []
        self.commitment_requested = False

    def stop(self, reason: StopReason) -> None:
        self._close()

    def outputs(self) -> dict[str, JobOutput]:
        return {}


class MoveScuJob:
    """Asks a modality to C-MOVE resources to a target (Orthanc's ``DicomMoveScu``); the base of
    :class:`GetScuJob`, which retrieves them itself."""

    type_name = MOVE_TYPE
    operation = "C-MOVE"

    def __init__(self, client: ClientProvider, snapshot: dict[str, Any]) -> None:
        self._client = client
        self.peer = peer_of(snapshot["Peer"])
        self.level = Level.parse(snapshot["Level"])
        self.target_aet: str = snapshot.get("TargetAet", "")
        #: The identifiers, as simplified JSON (keyword → value).
        self.queries: list[dict[str, str]] = list(snapshot["Queries"])
        self.description: str = snapshot.get("Description", "REST API")
        self.permissive = bool(snapshot.get("Permissive", False))
        self.position = int(snapshot.get("Position", 0))
        self.failed = int(snapshot.get("Failed", 0))

    def _retrieve(self, identifier: pydicom.Dataset) -> MoveOutcome:
        return self._client().move(self.peer, self.level, identifier, self.target_aet)

    def step(self, context: JobContext) -> StepResult:
        deadline = time.monotonic() + STEP_SECONDS
        while self.position < len(self.queries) and time.monotonic() < deadline:
            identifier = identifier_of(self.level, self.queries[self.position])
            try:
                outcome = self._retrieve(identifier)
                if outcome.failed and not self.permissive:
                    raise ObeliskError(
                        code=ErrorCode.NetworkProtocol,
                        details=f"{self.operation} from {self.peer.aet}: {outcome.failed} "
                        "sub-operations failed",
                    )
            except ObeliskError as exc:
                if self.permissive:
                    self.failed += 1
                elif exc.details:
                    raise
                else:  # an error with its text as message: the job's ErrorDetails need it
                    raise ObeliskError(exc.message, code=exc.code, details=exc.message) from exc
            self.position += 1
        return StepResult.cont() if self.position < len(self.queries) else StepResult.success()

    def progress(self) -> float:
        return 1.0 if not self.queries else self.position / len(self.queries)

    def content(self) -> dict[str, Any]:
        return {
            "Description": self.description,
            "LocalAet": self.peer.local_aet,
            "Query": [
                {**query, "QueryRetrieveLevel": _qr_level(self.level)} for query in self.queries
            ],
            "RemoteAet": self.peer.aet,
            "TargetAet": self.target_aet,
        }

    def serialize(self) -> dict[str, Any]:
        return {
            "Type": self.type_name,
            "Peer": peer_json(self.peer),
            "Level": self.level.title,
            "TargetAet": self.target_aet,
            "Queries": self.queries,
            "Description": self.description,
            "Permissive": self.permissive,
            "Position": self.position,
            "Failed": self.failed,
        }

    def reset(self) -> None:
        self.position = 0
        self.failed = 0

    def stop(self, reason: StopReason) -> None:
        return None

    def outputs(self) -> dict[str, JobOutput]:
        return {}


class GetScuJob(MoveScuJob):
    """Retrieves resources from a modality over C-GET and stores them here through the normal
    ingest (Orthanc 1.11's ``DicomGetScu``). The content is the C-MOVE job's without
    ``TargetAet``."""

    type_name = GET_TYPE
    operation = "C-GET"

    def __init__(
        self, client: ClientProvider, receiver: ReceiverOf, snapshot: dict[str, Any]
    ) -> None:
        super().__init__(client, snapshot)
        self._receiver = receiver

    def _retrieve(self, identifier: pydicom.Dataset) -> MoveOutcome:
        return self._client().get(self.peer, self.level, identifier, self._receiver(self.peer))

    def content(self) -> dict[str, Any]:
        content = super().content()
        del content["TargetAet"]
        return content


def _qr_level(level: Level) -> str:
    return "IMAGE" if level is Level.INSTANCE else level.name


#: The keys a C-MOVE identifier carries at each level (unique keys of the level and above).
MOVE_KEYS = {
    Level.PATIENT: ("PatientID",),
    Level.STUDY: ("PatientID", "StudyInstanceUID"),
    Level.SERIES: ("PatientID", "StudyInstanceUID", "SeriesInstanceUID"),
    Level.INSTANCE: ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}


def move_keys_of(level: Level, answer: pydicom.Dataset) -> dict[str, str]:
    """The identifier to retrieve one C-FIND answer, as simplified JSON."""
    simple = simplify(full_tags(answer))
    return {k: str(simple[k]) for k in MOVE_KEYS[level] if simple.get(k)}


def identifier_of(level: Level, keys: dict[str, str]) -> pydicom.Dataset:
    identifier = pydicom.Dataset()
    identifier.QueryRetrieveLevel = _qr_level(level)
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    return identifier
