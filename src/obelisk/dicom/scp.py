"""The DICOM server: C-ECHO, C-STORE, C-FIND, C-MOVE and C-GET on ``DicomPort`` as ``DicomAet``.

This module accepts the connections, sends each to the direct path or to pynetdicom, and
translates pynetdicom's events: what to accept and what to answer is decided by services (access
policy and modalities, :class:`DicomRequestService`, the ingest service).
Received instances are written as they came (preamble + file meta + the received bytes, never
decoded and re-encoded) through the same ingest path as REST uploads, which answers only once the
instance is durable.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pydicom
from pydicom.uid import UID
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import SOPClassCommonExtendedNegotiation
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.transport import ThreadedAssociationServer

from obelisk.config import Settings
from obelisk.core.levels import Level
from obelisk.dicom import pdu
from obelisk.dicom.contexts import (
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STORAGE_SERVICE_CLASS,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    VERIFICATION,
    StorageAbstractSyntaxes,
    is_unknown_sop_class,
    quiet_pynetdicom,
    set_nodelay,
    storage_contexts,
)
from obelisk.dicom.direct_path import DirectAssociation, DirectEndpoint, serves_directly
from obelisk.dicom.scu import PynetdicomClient, accepted_syntaxes
from obelisk.dicom.status import NOT_AUTHORIZED, store_and_answer
from obelisk.dicom.storage_commitment import (
    STORAGE_COMMITMENT,
    CommitmentHandlers,
    PynetdicomCommitmentClient,
)
from obelisk.dicom.tls import DicomTls, accept_tls, tls_args
from obelisk.errors import ConfigurationError, ErrorCode, ObeliskError
from obelisk.services.context import Services
from obelisk.services.dicom_client import Peer
from obelisk.services.dicom_network import DicomNetwork
from obelisk.services.ingest import IngestService, Origin
from obelisk.services.modalities import DicomRequest
from obelisk.services.storage_commitment import StorageCommitmentService
from obelisk.services.transcoding import SendTranscoding

log = logging.getLogger("obelisk.dicom")

PENDING = 0xFF00
CANCEL = 0xFE00
_QUERY_MODELS = (
    PATIENT_ROOT_FIND,
    STUDY_ROOT_FIND,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_MOVE,
    PATIENT_ROOT_GET,
    STUDY_ROOT_GET,
)
_ALL_REQUESTS = frozenset(DicomRequest)
_PEEK_LIMIT = 60_000


class DicomServer:
    """Listens on ``DicomPort``; serves store/echo/find associations on the direct path
    (``direct_path.py``) and hands the others (C-MOVE, C-GET, role selection…) to pynetdicom."""

    def __init__(
        self,
        settings: Settings,
        network: DicomNetwork,
        ingest: IngestService,
        host: str,
        commitment: StorageCommitmentService | None = None,
    ) -> None:
        quiet_pynetdicom()
        self._commitment = commitment
        self._network = network
        self._ingest = ingest
        self._host = host
        self._port = int(settings["DicomPort"])
        self._aet = str(settings["DicomAet"])
        self._check_called_aet = bool(settings["DicomCheckCalledAet"])
        #: What each association may ask, decided once when it is requested.
        self._allowed: weakref.WeakKeyDictionary[Association, frozenset[DicomRequest]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._server: ThreadedAssociationServer | None = None
        self._listener: socket.socket | None = None
        self._running = threading.Event()
        self._connections: set[socket.socket] = set()
        self.ae = self._build_ae(settings)
        self._fast_store = bool(settings.obelisk["DicomStoreFastPath"])
        #: DicomTlsEnabled: every accepted connection is wrapped before anything is read.
        self._tls_options = DicomTls.from_settings(settings)
        self._transcoding = SendTranscoding.from_settings(settings)
        self._tls = self._tls_options.server_context() if settings["DicomTlsEnabled"] else None
        timeout = int(settings["DicomScpTimeout"])
        self._endpoint = DirectEndpoint(
            aet=self._aet,
            check_called_aet=self._check_called_aet,
            max_pdu=int(settings["MaximumPduLength"]),
            acceptance=network.storage_acceptance,
            ingest=ingest,
            access=self._access,
            find=lambda level, identifier: network.requests.find(level, identifier, self._aet),
            timeout=float(timeout) if timeout else None,
        )

    @property
    def port(self) -> int:
        if self._listener is None:
            return self._port
        return int(self._listener.getsockname()[1])

    def _build_ae(self, settings: Settings) -> AE:
        ae = AE(ae_title=self._aet)
        timeout = int(settings["DicomScpTimeout"])
        ae.network_timeout = timeout or None
        ae.acse_timeout = max(timeout, 30) if timeout else 30
        ae.dimse_timeout = timeout or None
        ae.maximum_pdu_size = int(settings["MaximumPduLength"])
        ae.maximum_associations = max(int(settings["DicomThreadsCount"]), 10)
        ae.require_called_aet = self._check_called_aet
        ae.add_supported_context(VERIFICATION)
        for model in _QUERY_MODELS:
            ae.add_supported_context(model)
        # Storage commitment: N-ACTION from modalities, and their N-EVENT-REPORTs, which they may
        # send as the SCP of the association (SCP/SCU role selection).
        ae.add_supported_context(STORAGE_COMMITMENT, scu_role=True, scp_role=True)
        # Storage contexts are decided for each association (_storage_contexts): the accepted
        # transfer syntaxes and unknown SOP classes can change at runtime.
        return ae

    def start(self) -> None:
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, set_nodelay),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_C_GET, self._on_get),
        ]
        if self._commitment is not None:
            handlers += CommitmentHandlers(self._commitment).handlers()
        # pynetdicom serves the associations handed to it (see _handle); it listens only on an
        # ephemeral loopback port that nobody is told about.
        # With DicomTlsEnabled, that port speaks TLS too (connections handed over are wrapped
        # already: process_request does not wrap them again).
        self._server = self.ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=handlers, ssl_context=self._tls
        )
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self._host, self._port))
        except OSError as exc:
            listener.close()
            self.stop()
            raise ConfigurationError(
                f"The DICOM port {self._port} on {self._host} is already in use or not allowed",
                code=ErrorCode.DicomPortInUse,
                details=str(exc),
            ) from exc
        listener.listen(128)
        listener.settimeout(0.5)  # so that stop() is noticed
        self._listener = listener
        self._running.set()
        threading.Thread(target=self._accept, name="obelisk-dicom-accept", daemon=True).start()
        log.info("DICOM server %s listening on %s:%d", self._aet, self._host, self.port)

    def stop(self) -> None:
        self._running.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _accept(self) -> None:
        while self._running.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                connection, address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(
                target=self._handle, args=(connection, address), name="obelisk-dicom", daemon=True
            ).start()

    def _handle(self, connection: socket.socket, address: tuple[str, int]) -> None:
        """Reads (without consuming) the association request, then serves a store-only
        association here or hands the connection to pynetdicom."""
        connection.settimeout(30)
        if self._tls is not None:
            wrapped = accept_tls(connection, self._tls, address[0], 30)
            if wrapped is None:
                return
            connection = wrapped
        try:
            head = connection.recv(6, socket.MSG_PEEK | socket.MSG_WAITALL)
            if len(head) < 6:
                connection.close()
                return
            pdu_type, length = pdu.header(head)
            request = None
            # A request is peeked at whole, so it must fit the socket's receive buffer; a larger
            # one (hundreds of contexts) goes to pynetdicom without being looked at.
            if pdu_type == pdu.ASSOCIATE_RQ and self._fast_store and length < _PEEK_LIMIT:
                raw = connection.recv(6 + length, socket.MSG_PEEK | socket.MSG_WAITALL)
                request = pdu.parse_associate_rq(raw[6:])
        except (OSError, pdu.ProtocolError):
            connection.close()
            return
        storage = StorageAbstractSyntaxes(self._network.storage_acceptance.unknown_sop_classes)
        if request is None or not serves_directly(request, storage):
            server = self._server
            if server is None:
                connection.close()
                return
            connection.settimeout(None)
            server.process_request(connection, address)
            return
        with self._lock:
            self._connections.add(connection)
        try:
            connection.recv(6 + length, socket.MSG_WAITALL)  # consume the request peeked at
            connection.settimeout(self._endpoint.timeout)
            DirectAssociation(connection, address[0], request, self._endpoint).run()
        finally:
            with self._lock:
                self._connections.discard(connection)
            connection.close()

    # -- association policy ---------------------------------------------------------------------
    def _access(self, calling_aet: str, ip: str) -> frozenset[DicomRequest] | None:
        """What a peer may ask; ``None`` when it may not associate at all."""
        registry, policy = self._network.registry, self._network.policy
        if not policy.allows_connection(registry, calling_aet, ip):
            return None
        return frozenset(r for r in _ALL_REQUESTS if policy.allows(registry, r, calling_aet, ip))

    def _on_requested(self, event: evt.Event) -> None:
        assoc = event.assoc
        # requestor.ae_title is only filled in after this event: read the request itself.
        request = assoc.requestor.primitive
        aet = str(request.calling_ae_title if request is not None else "").strip()
        ip = assoc.requestor.address
        allowed = self._access(aet, ip)
        if allowed is None:
            log.warning("Refusing an association from unknown AET %r at %s", aet, ip)
            assoc.acse.send_reject(0x01, 0x01, 0x03)  # permanent, calling AE not recognised
            assoc.kill()
            return
        with self._lock:
            self._allowed[assoc] = allowed
        assoc.acceptor.supported_contexts = [
            *assoc.acceptor.supported_contexts,
            *self._storage_contexts(
                request.presentation_context_definition_list if request else []
            ),
        ]

    def _on_accepted(self, event: evt.Event) -> None:
        """pynetdicom serves a DIMSE message by the service of its SOP class: a C-STORE of an
        unknown SOP class (accepted in promiscuous mode) is declared of the Storage Service
        Class, as a SOP Class Common Extended Negotiation would (pynetdicom's private table)."""
        acceptor = event.assoc.acceptor
        for context in event.assoc.accepted_contexts:
            uid = str(context.abstract_syntax or "")
            if is_unknown_sop_class(uid):
                item = SOPClassCommonExtendedNegotiation()
                item.sop_class_uid = uid
                item.service_class_uid = STORAGE_SERVICE_CLASS
                acceptor._common_ext[UID(uid)] = item

    def _storage_contexts(self, proposed: list[PresentationContext]) -> list[PresentationContext]:
        """The storage contexts to accept among those proposed, as the runtime settings say."""
        acceptance = self._network.storage_acceptance
        storage = StorageAbstractSyntaxes(acceptance.unknown_sop_classes)
        syntaxes: dict[str, list[str]] = {}
        for context in proposed:
            abstract = str(context.abstract_syntax or "")
            if abstract not in storage:
                continue
            found = syntaxes.setdefault(abstract, [])
            found.extend(
                str(s)
                for s in context.transfer_syntax
                if acceptance.accepts_syntax(str(s)) and str(s) not in found
            )
        contexts = []
        for abstract, accepted in syntaxes.items():
            if not accepted:
                continue
            context = build_context(abstract, accepted)
            # scp_role: a C-GET requestor receives the instances as a Storage SCP.
            context.scu_role, context.scp_role = False, True
            contexts.append(context)
        return contexts

    def _permits(self, event: evt.Event, request: DicomRequest) -> bool:
        with self._lock:
            allowed = self._allowed.get(event.assoc, frozenset())
        if request not in allowed:
            log.warning(
                "Refused %s request from AET %r", request.value, event.assoc.requestor.ae_title
            )
            return False
        return True

    def _origin(self, assoc: Association) -> Origin:
        return Origin(
            kind="DicomProtocol",
            remote_aet=str(assoc.requestor.ae_title).strip(),
            called_aet=str(assoc.acceptor.ae_title).strip(),
            remote_ip=assoc.requestor.address,
        )

    # -- services -------------------------------------------------------------------------------
    def _on_echo(self, event: evt.Event) -> int:
        return 0x0000 if self._permits(event, DicomRequest.ECHO) else NOT_AUTHORIZED

    def _on_store(self, event: evt.Event) -> int:
        if not self._permits(event, DicomRequest.STORE):
            return NOT_AUTHORIZED
        data = event.encoded_dataset(include_meta=True)
        return store_and_answer(self._ingest, data, self._origin(event.assoc))

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int, pydicom.Dataset | None]]:
        if not self._permits(event, DicomRequest.FIND):
            yield NOT_AUTHORIZED, None
            return
        identifier = event.identifier
        level = _level_of(identifier)
        if level is None:
            yield 0xC000, None  # unable to process: no or bad QueryRetrieveLevel
            return
        for answer in self._network.requests.find(level, identifier, self._aet):
            if event.is_cancelled:
                yield CANCEL, None
                return
            yield PENDING, answer

    def _on_move(self, event: evt.Event) -> Iterator[Any]:
        if not self._permits(event, DicomRequest.MOVE):
            raise PermissionError("C-MOVE is not allowed for this modality")
        destination = str(event.move_destination).strip()
        targets = self._network.registry.by_aet(destination)
        if not targets:
            log.warning("C-MOVE to unknown destination AET %r", destination)
            yield None, None  # pynetdicom answers 0xA801 (move destination unknown)
            return
        target = targets[0]
        items = self._items(event)
        allowed = target.allow_transcoding
        contexts = storage_contexts(
            ((sop, ts) for _, sop, ts in items), self._transcoding.proposed(allowed)
        )
        sub_association: list[Association] = []
        yield (
            target.host,
            target.port,
            {
                "ae_title": target.aet,
                "contexts": contexts,
                "evt_handlers": [
                    (evt.EVT_CONN_OPEN, set_nodelay),
                    (evt.EVT_ACCEPTED, lambda accepted: sub_association.append(accepted.assoc)),
                ],
                "tls_args": tls_args(
                    self._tls_options,
                    Peer(
                        target.aet,
                        target.host,
                        target.port,
                        self._aet,
                        use_tls=target.use_dicom_tls,
                    ),
                ),
            },
        )
        yield len(items)
        # pynetdicom associates with the destination before asking for the first dataset
        yield from self._sub_operations(
            event, items, lambda: sub_association[-1] if sub_association else None, allowed
        )

    def _on_get(self, event: evt.Event) -> Iterator[Any]:
        if not self._permits(event, DicomRequest.GET):
            raise PermissionError("C-GET is not allowed for this modality")
        items = self._items(event)
        yield len(items)
        modalities = self._network.registry.by_aet(str(event.assoc.requestor.ae_title).strip())
        allowed = modalities[0].allow_transcoding if modalities else True
        yield from self._sub_operations(event, items, lambda: event.assoc, allowed)

    def _items(self, event: evt.Event) -> list[tuple[str, str, str]]:
        level = _level_of(event.identifier)
        if level is None:
            return []
        return self._network.requests.instances_to_retrieve(level, event.identifier)

    def _sub_operations(
        self,
        event: evt.Event,
        items: list[tuple[str, str, str]],
        sender: Callable[[], Association | None],
        allow_transcoding: bool,
    ) -> Iterator[tuple[int, pydicom.Dataset | None]]:
        """The datasets to C-STORE over ``sender()`` (the C-MOVE sub-association or the C-GET
        association), each in a transfer syntax accepted there (Orthanc's transcoding rules)."""
        for public_id, _, _ in items:
            if event.is_cancelled:
                yield CANCEL, None
                return
            dataset = self._network.requests.dataset(public_id)
            assoc = sender()
            if assoc is None:
                yield PENDING, dataset
                continue
            aet = str(assoc.acceptor.ae_title if assoc.is_requestor else assoc.requestor.ae_title)
            accepted = accepted_syntaxes(assoc, str(dataset.get("SOPClassUID", "")))
            try:
                dataset = self._transcoding.outgoing(
                    dataset, accepted, allowed=allow_transcoding, peer_aet=aet.strip()
                )
            except ObeliskError as exc:
                log.warning("C-STORE sub-operation of instance %s: %s", public_id, exc)
                dataset = _unsendable(dataset)
            yield PENDING, dataset


def _unsendable(dataset: pydicom.Dataset) -> pydicom.Dataset:
    """A stand-in for an instance that cannot be sent: pynetdicom fails to C-STORE it (it has
    no SOP class), counts a failed sub-operation and lists its SOP Instance UID as failed."""
    stand_in = pydicom.Dataset()
    stand_in.SOPInstanceUID = dataset.get("SOPInstanceUID", "")
    return stand_in


def _level_of(identifier: pydicom.Dataset) -> Level | None:
    text = str(identifier.get("QueryRetrieveLevel", "") or "")
    try:
        return Level.parse(text) if text else None
    except KeyError:
        return None


def start_dicom_network(settings: Settings, services: Services, host: str) -> DicomServer | None:
    """Plugs the pynetdicom client into the services and starts the server when enabled."""
    assert services.network is not None
    tls = DicomTls.from_settings(settings)
    services.network.client = PynetdicomClient(
        tls=tls, transcoding=SendTranscoding.from_settings(settings)
    )
    commitment = services.storage_commitment
    if commitment is not None:
        commitment.client = PynetdicomCommitmentClient(commitment, tls=tls)
    if not settings["DicomServerEnabled"]:
        return None
    server = DicomServer(settings, services.network, services.ingest, host, commitment)
    server.start()
    return server
