"""What services and jobs need from a DICOM client (SCU); ``obelisk.dicom.scu`` implements it.

Services speak of peers and pydicom datasets only; the network library stays in the adapter,
which ``server.py`` hands to :class:`~obelisk.services.dicom_network.DicomNetwork`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pydicom

from obelisk.core.levels import Level
from obelisk.services.ingest import IngestService, Origin


@dataclass(frozen=True, slots=True)
class Peer:
    """A remote application entity, as one association sees it."""

    aet: str
    host: str
    port: int
    local_aet: str
    #: Seconds for association and DIMSE answers; 0 = the server's default.
    timeout: float = 0
    #: The modality's ``UseDicomTls``: associate over TLS (the ``DicomTls*`` options).
    use_tls: bool = False
    #: The modality's ``AllowTranscoding``: C-STORE may transcode what the peer did not accept.
    allow_transcoding: bool = True


@dataclass(frozen=True, slots=True)
class MoveOutcome:
    """The sub-operation counts of the final answer to a C-MOVE or a C-GET."""

    completed: int = 0
    failed: int = 0
    warning: int = 0


@dataclass(frozen=True, slots=True)
class Received:
    """Where the instances received by a C-GET go: the normal ingest, with their origin, and the
    transfer syntaxes proposed for them (in order of preference)."""

    ingest: IngestService
    origin: Origin
    syntaxes: Sequence[str] = ()


class StoreSession(Protocol):
    """An open association for C-STORE; used across the steps of a job, closed at its end."""

    def send(self, data: bytes, *, move_originator: tuple[str, int] | None = None) -> int:
        """Sends one DICOM file; answers the DIMSE status; raises ``ObeliskError`` (network)."""
        ...

    def close(self) -> None: ...


class DicomClient(Protocol):
    def echo(self, peer: Peer) -> None:
        """C-ECHO; raises ``ObeliskError`` (``NetworkProtocol``) when the peer does not answer."""
        ...

    def open_store(self, peer: Peer, contexts: Sequence[tuple[str, str]]) -> StoreSession:
        """An association proposing the (SOP class, transfer syntax) pairs given."""
        ...

    def find(self, peer: Peer, level: Level, identifier: pydicom.Dataset) -> list[pydicom.Dataset]:
        """C-FIND (Study Root, or Patient Root at the patient level): the answers."""
        ...

    def find_worklist(self, peer: Peer, identifier: pydicom.Dataset) -> list[pydicom.Dataset]:
        """C-FIND in the Modality Worklist Information Model: the worklist items."""
        ...

    def move(
        self, peer: Peer, level: Level, identifier: pydicom.Dataset, target_aet: str
    ) -> MoveOutcome:
        """C-MOVE of what ``identifier`` designates to ``target_aet``."""
        ...

    def get(
        self,
        peer: Peer,
        level: Level,
        identifier: pydicom.Dataset,
        receive: Received,
    ) -> MoveOutcome:
        """C-GET of what ``identifier`` designates: the peer C-STOREs the instances on the same
        association, each handed to ``receive.ingest`` under ``receive.origin``."""
        ...
