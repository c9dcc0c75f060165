"""Remote DICOM modalities: Orthanc's ``DicomModalities`` plus the changes made over REST, and the
access rules of the DICOM server (``DicomAlwaysAllow*``, ``DicomCheckModalityHost``).

A modality is configured either as Orthanc's array ``["AET", "host", port, "Manufacturer"?]`` or
as an object (``{"AET": …, "Host": …, "Port": …, "AllowStore": false, …}``). Modalities added,
changed or deleted with ``PUT``/``DELETE /modalities/{name}`` are kept in the index's global
properties (one JSON document), so they survive a restart and are seen by every server sharing a
PostgreSQL index; the configuration file gives the starting set.
"""

from __future__ import annotations

import enum
import json
import threading
from dataclasses import dataclass, fields
from typing import Any

from obelisk.errors import BadRequest, ErrorCode, ObeliskError, ParameterOutOfRange
from obelisk.index.base import Index

#: The global property holding the modalities as changed over REST (JSON object by name).
GLOBAL_PROPERTY = "ObeliskDicomModalities"


class DicomRequest(enum.Enum):
    """What a remote modality may ask of this server."""

    ECHO = "Echo"
    STORE = "Store"
    FIND = "Find"
    FIND_WORKLIST = "FindWorklist"
    MOVE = "Move"
    GET = "Get"


@dataclass(frozen=True, slots=True)
class RemoteModality:
    aet: str
    host: str
    port: int
    manufacturer: str = "Generic"
    allow_echo: bool = True
    allow_find: bool = True
    allow_find_worklist: bool = True
    allow_get: bool = True
    allow_move: bool = True
    allow_store: bool = True
    allow_n_action: bool = True
    allow_event_report: bool = True
    allow_transcoding: bool = True
    use_dicom_tls: bool = False
    local_aet: str = ""
    timeout: int = 0

    def allows(self, request: DicomRequest) -> bool:
        return {
            DicomRequest.ECHO: self.allow_echo,
            DicomRequest.STORE: self.allow_store,
            DicomRequest.FIND: self.allow_find,
            DicomRequest.FIND_WORKLIST: self.allow_find_worklist,
            DicomRequest.MOVE: self.allow_move,
            DicomRequest.GET: self.allow_get,
        }[request]


#: JSON key → field name, for the object form and for rendering.
_KEYS = {
    "AET": "aet",
    "Host": "host",
    "Port": "port",
    "Manufacturer": "manufacturer",
    "AllowEcho": "allow_echo",
    "AllowFind": "allow_find",
    "AllowFindWorklist": "allow_find_worklist",
    "AllowGet": "allow_get",
    "AllowMove": "allow_move",
    "AllowStore": "allow_store",
    "AllowNAction": "allow_n_action",
    "AllowEventReport": "allow_event_report",
    "AllowTranscoding": "allow_transcoding",
    "UseDicomTls": "use_dicom_tls",
    "LocalAet": "local_aet",
    "Timeout": "timeout",
}
_TYPES = {f.name: f.type for f in fields(RemoteModality)}


def parse_modality(name: str, value: Any) -> RemoteModality:
    """Orthanc's array or object form; raises ``BadRequest`` naming what is wrong."""
    if isinstance(value, list):
        if len(value) not in (3, 4) or not all(isinstance(v, str | int) for v in value):
            raise BadRequest(f'Modality "{name}": expected ["AET", "host", port, manufacturer?]')
        value = {"AET": value[0], "Host": value[1], "Port": value[2]} | (
            {"Manufacturer": value[3]} if len(value) == 4 else {}
        )
    if not isinstance(value, dict):
        raise BadRequest(f'Modality "{name}" must be a JSON array or object')
    arguments: dict[str, Any] = {}
    for key, item in value.items():
        if key == "AllowStorageCommitment":  # Orthanc's shorthand for the two N-services
            arguments["allow_n_action"] = arguments["allow_event_report"] = _boolean(key, item)
            continue
        field_name = _KEYS.get(key)
        if field_name is None:
            continue  # unknown keys are ignored, as Orthanc does
        arguments[field_name] = _convert(name, key, item, _TYPES[field_name])
    for required in ("aet", "host", "port"):
        if required not in arguments:
            key = next(k for k, v in _KEYS.items() if v == required)
            raise BadRequest(f'Modality "{name}": "{key}" is required')
    if not 0 < arguments["port"] < 65536:
        raise BadRequest(f'Modality "{name}": bad TCP port {arguments["port"]}')
    return RemoteModality(**arguments)


#: Orthanc 1.10.1's modality manufacturers (the last ones are obsolete names it still takes).
MANUFACTURERS = frozenset(
    {
        "Generic",
        "GenericNoWildcardInDates",
        "GenericNoUniversalWildcard",
        "Vitrea",
        "GE",
        "AgfaImpax",
        "SyngoVia",
        "EFilm2",
        "MedInria",
    }
)


def check_manufacturer(modality: RemoteModality) -> None:
    """``ParameterOutOfRange`` for a manufacturer Orthanc does not know."""
    if modality.manufacturer not in MANUFACTURERS:
        raise ParameterOutOfRange(f'Unknown modality manufacturer: "{modality.manufacturer}"')


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f'"{key}" must be a Boolean')
    return value


def _convert(name: str, key: str, value: Any, kind: object) -> Any:
    if kind in ("bool", bool):
        return _boolean(key, value)
    if kind in ("int", int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f'Modality "{name}": "{key}" must be an integer')
        return value
    if not isinstance(value, str):
        raise BadRequest(f'Modality "{name}": "{key}" must be a string')
    return value


def modality_json(modality: RemoteModality) -> dict[str, Any]:
    """``GET /modalities/{name}/configuration`` and the values of ``?expand``."""
    return {key: getattr(modality, attribute) for key, attribute in sorted(_KEYS.items())}


class ModalityRegistry:
    """The known modalities by symbolic name; REST changes persisted in the index."""

    def __init__(self, index: Index, configured: dict[str, Any]) -> None:
        self._index = index
        self._lock = threading.Lock()
        self._configured = {name: parse_modality(name, v) for name, v in configured.items()}

    def _current(self) -> dict[str, RemoteModality]:
        saved = self._index.get_global(GLOBAL_PROPERTY)
        if saved is None:
            return dict(self._configured)
        return {name: parse_modality(name, value) for name, value in json.loads(saved).items()}

    def all(self) -> dict[str, RemoteModality]:
        return dict(sorted(self._current().items()))

    def get(self, name: str) -> RemoteModality:
        found = self._current().get(name)
        if found is None:
            raise ObeliskError(
                f"No modality with symbolic name: {name}", code=ErrorCode.InexistentItem
            )
        return found

    def put(self, name: str, body: Any) -> RemoteModality:
        """Creates or replaces a modality (``PUT /modalities/{name}``)."""
        modality = parse_modality(name, body)
        with self._lock:
            current = self._current()
            current[name] = modality
            self._save(current)
        return modality

    def delete(self, name: str) -> None:
        with self._lock:
            current = self._current()
            if current.pop(name, None) is None:
                raise ObeliskError(
                    f"No modality with symbolic name: {name}", code=ErrorCode.InexistentItem
                )
            self._save(current)

    def _save(self, modalities: dict[str, RemoteModality]) -> None:
        document = json.dumps({name: modality_json(m) for name, m in modalities.items()})
        with self._index.write() as writer:
            writer.set_global(GLOBAL_PROPERTY, document)

    def by_aet(self, aet: str, host: str | None = None) -> list[RemoteModality]:
        """Modalities with this AET (case-insensitive); with ``host``, also at this address."""
        wanted = aet.strip().upper()
        return [
            m
            for m in self._current().values()
            if m.aet.strip().upper() == wanted and (host is None or m.host == host)
        ]


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Who may associate with this server and ask what (Orthanc's application entity filter)."""

    always_allow: frozenset[DicomRequest]
    check_modality_host: bool

    @classmethod
    def from_settings(cls, values: dict[str, Any]) -> AccessPolicy:
        flags = {
            DicomRequest.ECHO: "DicomAlwaysAllowEcho",
            DicomRequest.STORE: "DicomAlwaysAllowStore",
            DicomRequest.FIND: "DicomAlwaysAllowFind",
            DicomRequest.FIND_WORKLIST: "DicomAlwaysAllowFindWorklist",
            DicomRequest.MOVE: "DicomAlwaysAllowMove",
            DicomRequest.GET: "DicomAlwaysAllowGet",
        }
        allowed = frozenset(r for r, key in flags.items() if values.get(key))
        return cls(allowed, bool(values.get("DicomCheckModalityHost", False)))

    def _modalities(self, registry: ModalityRegistry, aet: str, ip: str) -> list[RemoteModality]:
        return registry.by_aet(aet, ip if self.check_modality_host else None)

    def allows_connection(self, registry: ModalityRegistry, aet: str, ip: str) -> bool:
        return bool(self.always_allow) or bool(self._modalities(registry, aet, ip))

    def allows(self, registry: ModalityRegistry, request: DicomRequest, aet: str, ip: str) -> bool:
        if request in self.always_allow:
            return True
        return any(m.allows(request) for m in self._modalities(registry, aet, ip))
