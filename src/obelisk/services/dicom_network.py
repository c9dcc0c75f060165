"""The DICOM network use cases behind ``/modalities`` and ``/queries``: echo, store (a job),
store-straight, query/retrieve (C-FIND answers kept as ``/queries/{id}``, C-MOVE and C-GET as
jobs).

Query/retrieve answers live in memory, as in Orthanc (the last :data:`MAX_QUERIES` are kept).
"""

from __future__ import annotations

import io
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.uid import generate_uid

from obelisk.core.changes import MetadataType
from obelisk.core.dicom_json import element_text
from obelisk.core.levels import Level
from obelisk.core.tags import format_tag
from obelisk.core.timestamps import now_iso
from obelisk.errors import BadFileFormat, BadRequest, ErrorCode, ObeliskError, UnknownResource
from obelisk.index.base import ExportedResource
from obelisk.jobs.model import Job
from obelisk.services.dicom_client import DicomClient, Peer, Received
from obelisk.services.dicom_jobs import (
    GET_TYPE,
    MOVE_TYPE,
    STORE_TYPE,
    GetScuJob,
    MoveScuJob,
    StoreScuJob,
    identifier_of,
    move_keys_of,
    peer_json,
)
from obelisk.services.dicom_queries import (
    CHARSETS,
    PARENT_KEYS,
    PATIENT_ID,
    STUDY_INSTANCE_UID,
    answer_style,
    build_identifier,
    find_fields,
    level_fields,
    specific_enough,
    tag_format,
    worklist_identifier,
)
from obelisk.services.dicom_requests import DicomRequestService
from obelisk.services.find import level_field
from obelisk.services.ingest import Origin
from obelisk.services.modalities import (
    AccessPolicy,
    ModalityRegistry,
    RemoteModality,
    check_manufacturer,
    parse_modality,
)
from obelisk.services.storage_acceptance import StorageAcceptance

if TYPE_CHECKING:
    from obelisk.jobs.engine import JobEngine
    from obelisk.services.context import Services

MAX_QUERIES = 100
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"


@dataclass
class StoredQuery:
    modality: str
    level: Level
    query: pydicom.Dataset
    answers: list[pydicom.Dataset]
    local_aet: str
    timeout: float


class DicomNetwork:
    def __init__(self, services: Services, client: DicomClient | None) -> None:
        settings = services.settings
        self._services = services
        self.client = client
        self.local_aet = str(settings["DicomAet"])
        self.registry = ModalityRegistry(services.index, settings["DicomModalities"])
        self.policy = AccessPolicy.from_settings(settings.values)
        self.requests = DicomRequestService(
            services.find, services.resources, case_sensitive_pn=bool(settings["CaseSensitivePN"])
        )
        self._default_timeout = float(settings.get("DicomScuTimeout", 10) or 10)
        self._echo_checks_find = bool(settings.get("DicomEchoChecksFind", False))
        #: What the C-STORE SCP accepts; ``/tools/accepted-transfer-syntaxes`` changes it.
        self.storage_acceptance = StorageAcceptance.from_settings(settings.values)
        self._queries: OrderedDict[str, StoredQuery] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def _charset(self) -> str:
        """The Specific Character Set of ``DefaultEncoding`` (changeable at runtime)."""
        encoding = str(self._services.settings.get("DefaultEncoding", "Latin1"))
        return CHARSETS.get(encoding, "ISO_IR 100")

    # -- wiring ---------------------------------------------------------------------------------
    def register_job_kinds(self, engine: JobEngine) -> None:
        read = self._services.resources.dicom_bytes
        engine.register_kind(
            STORE_TYPE, lambda s: StoreScuJob(self._client, read, s, self._request_commitment)
        )
        engine.register_kind(MOVE_TYPE, lambda s: MoveScuJob(self._client, s))
        engine.register_kind(GET_TYPE, lambda s: GetScuJob(self._client, self._received, s))

    def _received(self, peer: Peer) -> Received:
        """Where a C-GET puts what it receives: the ingest, as a C-STORE from ``peer`` to its
        local AET, in the transfer syntaxes the C-STORE SCP accepts."""
        origin = Origin(
            kind="DicomProtocol",
            remote_aet=peer.aet,
            called_aet=peer.local_aet,
            remote_ip=peer.host,
        )
        return Received(self._services.ingest, origin, self.storage_acceptance.syntaxes())

    def _request_commitment(self, peer: Peer, instances: Sequence[str], uid: str) -> None:
        """The trailing N-ACTION of a store job with ``StorageCommitment``."""
        commitment = self._services.storage_commitment
        if commitment is None:
            raise ObeliskError("Storage commitment is not set up", code=ErrorCode.NotImplemented)
        commitment.request_instances(peer, instances, uid)

    def _client(self) -> DicomClient:
        if self.client is None:
            raise ObeliskError("The DICOM client is not available", code=ErrorCode.NotImplemented)
        return self.client

    def peer(self, name: str, body: dict[str, Any] | None = None) -> Peer:
        modality = self.registry.get(name)
        return self._peer_of(modality, body or {})

    def _peer_of(self, modality: RemoteModality, body: dict[str, Any]) -> Peer:
        local = modality.local_aet or body.get("LocalAet") or self.local_aet
        timeout = body.get("Timeout", modality.timeout) or self._default_timeout
        if not isinstance(local, str) or isinstance(timeout, bool):
            raise BadRequest('"LocalAet" must be a string and "Timeout" a number')
        if not isinstance(timeout, int | float):
            raise BadRequest('"Timeout" must be a number')
        return Peer(
            modality.aet,
            modality.host,
            modality.port,
            local,
            float(timeout),
            modality.use_dicom_tls,
            modality.allow_transcoding,
        )

    # -- echo and store -------------------------------------------------------------------------
    def echo(self, name: str, body: dict[str, Any]) -> None:
        self._echo(self.peer(name, body), body)

    def echo_unregistered(self, body: Any) -> None:
        """``/tools/dicom-echo``: C-ECHO to a modality described in the body, not registered."""
        try:
            modality = parse_modality("dicom-echo", body)
        except BadRequest as exc:
            raise BadFileFormat(exc.message) from exc
        check_manufacturer(modality)
        self._echo(self._peer_of(modality, body if isinstance(body, dict) else {}), body)

    def _echo(self, peer: Peer, body: Any) -> None:
        """C-ECHO, then (``CheckFind``, default ``DicomEchoChecksFind``) a C-FIND of a random
        study, to check that the peer knows this server, as Orthanc does."""
        client = self._client()
        client.echo(peer)
        check_find = self._echo_checks_find
        if isinstance(body, dict) and "CheckFind" in body:
            check_find = body["CheckFind"]
            if not isinstance(check_find, bool):
                raise BadFileFormat("Boolean value expected in field: CheckFind")
        if check_find:
            query = {"StudyInstanceUID": str(generate_uid())}
            client.find(peer, Level.STUDY, self._with_charset(Level.STUDY, query))

    def store_job(self, name: str, body: dict[str, Any]) -> Job:
        peer = self.peer(name, body)
        resources = body.get("Resources")
        if isinstance(resources, str):
            resources = [resources]
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise BadRequest('"Resources" must be a list of Orthanc identifiers')
        instances, contexts = self._instances_and_contexts(resources)
        self._log_exports(name, resources)
        originator_aet = body.get("MoveOriginatorAet", "")
        originator_id = body.get("MoveOriginatorID", 0)
        if not isinstance(originator_aet, str) or not isinstance(originator_id, int):
            raise BadRequest('"MoveOriginatorAet" must be a string, "MoveOriginatorID" a number')
        storage_commitment = body.get("StorageCommitment", False)
        if not isinstance(storage_commitment, bool):  # Orthanc: even null is refused
            raise ObeliskError(code=ErrorCode.BadParameterType)
        snapshot = {
            "Peer": peer_json(peer),
            "Instances": instances,
            "Contexts": contexts,
            "ParentResources": resources,
            "Permissive": bool(body.get("Permissive", False)),
            "MoveOriginatorAet": originator_aet,
            "MoveOriginatorID": originator_id,
            "StorageCommitment": storage_commitment,
        }
        read = self._services.resources.dicom_bytes
        return StoreScuJob(self._client, read, snapshot, self._request_commitment)

    def _instances_and_contexts(self, resources: list[str]) -> tuple[list[str], list[list[str]]]:
        index = self._services.index
        instances: list[str] = []
        internal: list[int] = []
        for public_id in resources:
            resource = index.lookup(public_id)
            if resource is None:
                raise UnknownResource(f"Unknown resource: {public_id}")
            for found in index.instance_files(resource.internal_id):
                instances.append(found.public_id)
                internal.append(found.internal_id)
        classes = index.metadata_of_many(internal, MetadataType.SopClassUid)
        syntaxes = index.metadata_of_many(internal, MetadataType.TransferSyntax)
        pairs = sorted({(classes.get(i, ""), syntaxes.get(i, _EXPLICIT_LE)) for i in internal})
        return instances, [[sop, ts] for sop, ts in pairs if sop]

    def _log_exports(self, modality: str, resources: list[str]) -> None:
        """``LogExportedResources`` (Orthanc's option, off by default): ``/exports`` records each
        resource asked for (not its instances), when the request is accepted — a transfer that
        fails later stays logged, as in Orthanc. ``store-straight`` is not logged."""
        if not self._services.settings.get("LogExportedResources", False):
            return
        date = now_iso()
        self._services.changes.log_exports(
            [self._exported(modality, public_id, date) for public_id in resources]
        )

    def _exported(self, modality: str, public_id: str, date: str) -> ExportedResource:
        """One ``/exports`` entry: the resource's identifiers and those of its ancestors."""
        index = self._services.index
        resource = index.lookup(public_id)
        uids: dict[str, str] = {}
        level = resource.level if resource is not None else Level.PATIENT
        while resource is not None:
            uids.update({k: v for k, v in resource.main_tags.items() if k not in uids})
            parent = resource.parent_public_id
            resource = index.lookup(parent) if parent else None
        return ExportedResource(
            0,
            level,
            public_id,
            modality,
            uids.get("PatientID", ""),
            uids.get("StudyInstanceUID", ""),
            uids.get("SeriesInstanceUID", ""),
            uids.get("SOPInstanceUID", ""),
            date,
        )

    def store_straight(self, name: str, data: bytes) -> dict[str, str]:
        try:
            header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
            sop_class = str(header.SOPClassUID)
            sop_instance = str(header.SOPInstanceUID)
            syntax = str(header.file_meta.TransferSyntaxUID)
        except Exception as exc:
            raise BadFileFormat("The body is not a DICOM file") from exc
        session = self._client().open_store(self.peer(name), [(sop_class, syntax)])
        try:
            status = session.send(data)
        finally:
            session.close()
        if status not in (0x0000, 0xB000, 0xB006, 0xB007):
            raise ObeliskError(
                f"C-STORE to modality {name} answered status 0x{status:04X}",
                code=ErrorCode.NetworkProtocol,
            )
        return {"SOPClassUID": sop_class, "SOPInstanceUID": sop_instance}

    # -- query / retrieve -----------------------------------------------------------------------
    def query(self, name: str, body: dict[str, Any]) -> str:
        level = level_field(body)
        query = body.get("Query", {})
        if not isinstance(query, dict):
            raise BadRequest('"Query" must be a JSON object')
        peer = self.peer(name, body)
        identifier = build_identifier(level, query, normalize=bool(body.get("Normalize", True)))
        answers = self._client().find(peer, level, identifier)
        query_id = str(uuid.uuid4())
        with self._lock:
            self._queries[query_id] = StoredQuery(
                name, level, identifier, answers, peer.local_aet, peer.timeout
            )
            while len(self._queries) > MAX_QUERIES:
                self._queries.popitem(last=False)
        return query_id

    def child_query(self, query_id: str, index: int, level: Level, body: dict[str, Any]) -> str:
        """``/queries/{id}/answers/{i}/query-studies|series|instances``: a new query one level
        below an answer, restricted to it by the answer's identifiers, on the same modality."""
        stored = self.stored_query(query_id)
        answer = self.answer(query_id, index)
        if level is not stored.level.child:
            raise BadRequest(
                f"An answer at level {stored.level.title} has no child query at {level.title}"
            )
        query = body.get("Query", {})
        if not isinstance(query, dict):
            raise BadRequest('"Query" must be a JSON object')
        restricted = dict(query)
        for key in PARENT_KEYS[level]:
            value = str(answer.get(key, "") or "")  # by keyword: the value itself
            if value:
                restricted[key] = value
        return self.query(stored.modality, {**body, "Level": level.title, "Query": restricted})

    def find_simple(self, name: str, level: Level, body: Any) -> list[dict[str, Any]] | None:
        """The deprecated ``/modalities/{id}/find-patient|study|series|instance``: one C-FIND
        with Orthanc's template of the level. ``None`` where Orthanc leaves the request
        unanswered (a bare 400): a body that is not a JSON object, or a query below the patient
        level that is not :func:`specific_enough`."""
        if not isinstance(body, dict):
            return None
        fields = find_fields(body)
        if not specific_enough(level, fields):
            return None
        answers = self._find_level(self.peer(name), level, fields)
        return [self._answer_json(answer, "simplify") for answer in answers]

    def find_hierarchy(self, name: str, body: Any) -> list[dict[str, Any]] | None:
        """The deprecated ``/modalities/{id}/find``: the patients the body matches, each with
        its matching studies (``Studies``), each with its matching series (``Series``).
        ``None`` (a bare 400, as Orthanc) when the body is not a JSON object."""
        if not isinstance(body, dict):
            return None
        fields = find_fields(body)
        peer = self.peer(name)
        patients = []
        for patient in self._find_level(peer, Level.PATIENT, fields):
            studies = []
            for study in self._find_level(peer, Level.STUDY, fields, patient, (PATIENT_ID,)):
                upper = (PATIENT_ID, STUDY_INSTANCE_UID)
                series = self._find_level(peer, Level.SERIES, fields, study, upper)
                studies.append(
                    self._answer_json(study, "simplify")
                    | {"Series": [self._answer_json(s, "simplify") for s in series]}
                )
            patients.append(self._answer_json(patient, "simplify") | {"Studies": studies})
        return patients

    def _find_level(
        self,
        peer: Peer,
        level: Level,
        fields: dict[int, str],
        parent: pydicom.Dataset | None = None,
        upper_tags: tuple[int, ...] = (),
    ) -> list[pydicom.Dataset]:
        """One C-FIND of the ``find-*`` routes; ``upper_tags`` copied from the parent answer."""
        upper = {}
        for tag in upper_tags:
            if parent is not None and tag in parent:
                upper[tag] = element_text(parent[tag])
        query = {format_tag(t): v for t, v in level_fields(level, fields, upper).items()}
        return self._client().find(peer, level, self._with_charset(level, query))

    def find_worklist(self, name: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """``/modalities/{id}/find-worklist``: ``{"Query": {…}, "Short"|"Full"|"Simplify"}``, or
        (Orthanc <= 1.9.4) the query itself as the body."""
        if "Query" in body:
            identifier, style = worklist_identifier(body["Query"]), answer_style(body)
        else:
            identifier, style = worklist_identifier(body), "simplify"
        if "SpecificCharacterSet" not in identifier:
            identifier.SpecificCharacterSet = self._charset
        answers = self._client().find_worklist(self.peer(name, body), identifier)
        return [self._answer_json(answer, style) for answer in answers]

    def _with_charset(self, level: Level, query: dict[str, Any]) -> pydicom.Dataset:
        identifier = build_identifier(level, query, normalize=True)
        if "SpecificCharacterSet" not in identifier:
            identifier.SpecificCharacterSet = self._charset
        return identifier

    def _answer_json(self, answer: pydicom.Dataset, style: str) -> dict[str, Any]:
        """An answer as Orthanc shows C-FIND answers: in its own character set."""
        shown = pydicom.Dataset()
        shown.update(answer)
        shown.SpecificCharacterSet = self._charset
        return tag_format(shown, style)

    def query_ids(self) -> list[str]:
        with self._lock:
            return list(self._queries)

    def stored_query(self, query_id: str) -> StoredQuery:
        with self._lock:
            found = self._queries.get(query_id)
        if found is None:
            raise UnknownResource(f"Unknown query: {query_id}")
        return found

    def delete_query(self, query_id: str) -> None:
        with self._lock:
            if self._queries.pop(query_id, None) is None:
                raise UnknownResource(f"Unknown query: {query_id}")

    def answer(self, query_id: str, index: int) -> pydicom.Dataset:
        answers = self.stored_query(query_id).answers
        if not 0 <= index < len(answers):
            raise ObeliskError(
                f"No answer {index} in query {query_id}", code=ErrorCode.InexistentItem
            )
        return answers[index]

    def retrieve_job(self, query_id: str, index: int | None, body: dict[str, Any]) -> Job:
        stored = self.stored_query(query_id)
        answers = stored.answers if index is None else [self.answer(query_id, index)]
        peer = self.peer(stored.modality, {"LocalAet": stored.local_aet, **body})
        target = body.get("TargetAet") or self.local_aet
        if not isinstance(target, str):
            raise BadRequest('"TargetAet" must be a string')
        queries = [move_keys_of(stored.level, answer) for answer in answers]
        return self._move_job(peer, stored.level, queries, target, body)

    def move_job(self, name: str, body: dict[str, Any]) -> Job:
        level, queries = self._retrieve_request(body)
        target = body.get("TargetAet") or self.local_aet
        if not isinstance(target, str):
            raise BadRequest('"TargetAet" must be a string')
        return self._move_job(self.peer(name, body), level, queries, target, body)

    def get_job(self, name: str, body: dict[str, Any]) -> Job:
        """``/modalities/{id}/get`` (Orthanc 1.11): a ``DicomGetScu`` job, whose C-GET stores the
        instances here. The body is ``/move``'s without ``TargetAet``."""
        level, queries = self._retrieve_request(body)
        snapshot = self._retrieve_snapshot(self.peer(name, body), level, queries, body)
        return GetScuJob(self._client, self._received, snapshot)

    def _retrieve_request(self, body: dict[str, Any]) -> tuple[Level, list[dict[str, str]]]:
        """The ``Level`` and ``Resources`` of ``/move`` and ``/get``: the identifiers as JSON."""
        level = level_field(body)
        resources = body.get("Resources")
        if not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources):
            raise BadRequest('"Resources" must be a list of JSON objects (tag → value)')
        queries = []
        for resource in resources:
            identifier = build_identifier(level, resource, normalize=False)
            queries.append(
                {
                    k: str(v)
                    for k, v in tag_format(identifier, "simplify").items()
                    if k != "QueryRetrieveLevel"
                }
            )
        return level, queries

    def _move_job(
        self,
        peer: Peer,
        level: Level,
        queries: list[dict[str, str]],
        target: str,
        body: dict[str, Any],
    ) -> Job:
        snapshot = self._retrieve_snapshot(peer, level, queries, body) | {"TargetAet": target}
        return MoveScuJob(self._client, snapshot)

    @staticmethod
    def _retrieve_snapshot(
        peer: Peer, level: Level, queries: list[dict[str, str]], body: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "Peer": peer_json(peer),
            "Level": level.title,
            "Queries": queries,
            "Permissive": bool(body.get("Permissive", False)),
        }


__all__ = ["DicomNetwork", "StoredQuery", "build_identifier", "identifier_of", "tag_format"]
