"""Settings from an Orthanc configuration file (JSON with ``//`` and ``/* */`` comments).

One table, :data:`OPTIONS`, gives every option Obelisk understands with its Orthanc default and
type. Unknown keys are logged once and kept (plugins' sections, for instance); a wrong type is a
:class:`ConfigurationError` naming the key. Obelisk's own options live in an ``"Obelisk"`` section.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obelisk.errors import ConfigurationError

log = logging.getLogger("obelisk.config")

#: Orthanc option → (expected JSON type(s), default).
OPTIONS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "Name": (str, "Obelisk"),
    "HttpPort": (int, 8042),
    "DicomPort": (int, 4242),
    "DicomAet": (str, "ORTHANC"),
    "DicomServerEnabled": (bool, True),
    "HttpServerEnabled": (bool, True),
    "StorageDirectory": (str, "obelisk-data"),
    "IndexDirectory": (str, ""),
    "StorageCompression": (bool, False),
    "SyncStorageArea": (bool, True),
    "MaximumStorageSize": (int, 0),
    "MaximumPatientCount": (int, 0),
    "MaximumStorageMode": (str, "Recycle"),
    "OverwriteInstances": (bool, False),
    "StableAge": (int, 60),
    "RemoteAccessAllowed": (bool, False),
    # None = not in the file: then it follows RemoteAccessAllowed, as in Orthanc >= 1.5.8.
    "AuthenticationEnabled": (bool, None),
    "RegisteredUsers": (dict, {}),
    "HttpDescribeErrors": (bool, True),
    "HttpCompressionEnabled": (bool, False),
    "HttpTimeout": (int, 30),
    "KeepAlive": (bool, True),
    "TcpNoDelay": (bool, True),
    "CaseSensitivePN": (bool, False),
    "UserMetadata": (dict, {}),
    "UserContentType": (dict, {}),
    "Dictionary": (dict, {}),
    "DefaultEncoding": (str, "Latin1"),
    "ConcurrentJobs": (int, 2),
    "JobsHistorySize": (int, 10),
    "SaveJobs": (bool, True),
    "LimitFindResults": (int, 0),
    "LimitFindInstances": (int, 0),
    "MetricsEnabled": (bool, True),
    "ExecuteLuaEnabled": (bool, False),
    "RestApiWriteToFileSystemEnabled": (bool, False),
    "LuaScripts": (list, []),
    "Plugins": (list, []),
    "DicomModalities": (dict, {}),
    "OrthancPeers": (dict, {}),
    "DicomCheckCalledAet": (bool, False),
    "DicomScpTimeout": (int, 30),
    "MaximumPduLength": (int, 16384),
    "DicomThreadsCount": (int, 4),
    # Transcoding of outgoing C-STORE (services/transcoding.py, docs/dicom-network.md).
    "TranscodeDicomProtocol": (bool, True),
    "DicomScuPreferredTransferSyntax": (str, "1.2.840.10008.1.2.1"),
    # DICOM TLS (docs/dicom-network.md); the last two are Orthanc 1.12.4's.
    "DicomTlsEnabled": (bool, False),
    "DicomTlsCertificate": (str, ""),
    "DicomTlsPrivateKey": (str, ""),
    "DicomTlsTrustedCertificates": (str, ""),
    "DicomTlsRemoteCertificateRequired": (bool, True),
    "DicomTlsMinimumProtocolVersion": (int, 0),
    "DicomTlsCiphersAccepted": (list, []),
    "CheckRevisions": (bool, False),
    "SslEnabled": (bool, False),
    "SslCertificate": (str, "certificate.pem"),
    "MediaArchiveSize": (int, 1),
    "SynchronousZipStream": (bool, True),
    "StorageAccessOnFind": (str, "Always"),
    "DeidentifyLogs": (bool, True),
    "HttpVerbose": (bool, False),
    "HttpsVerifyPeers": (bool, True),
    "HttpsCACertificates": (str, ""),
    "HttpProxy": (str, ""),
    "DicomAlwaysAllowEcho": (bool, True),
    "DicomAlwaysAllowStore": (bool, True),
    "DicomAlwaysAllowFind": (bool, False),
    "DicomAlwaysAllowFindWorklist": (bool, False),
    "DicomAlwaysAllowGet": (bool, False),
    "DicomAlwaysAllowMove": (bool, False),
    "DicomCheckModalityHost": (bool, False),
    "DicomEchoChecksFind": (bool, False),
    "StorageCommitmentReportsSize": (int, 100),
    "LogExportedResources": (bool, False),
    "UnknownSopClassAccepted": (bool, False),
    "DeflatedTransferSyntaxAccepted": (bool, True),
    "JpegTransferSyntaxAccepted": (bool, True),
    "Jpeg2000TransferSyntaxAccepted": (bool, True),
    "JpegLosslessTransferSyntaxAccepted": (bool, True),
    "JpipTransferSyntaxAccepted": (bool, True),
    "Mpeg2TransferSyntaxAccepted": (bool, True),
    "RleTransferSyntaxAccepted": (bool, True),
    "Mpeg4TransferSyntaxAccepted": (bool, True),
    "H265TransferSyntaxAccepted": (bool, True),
    "AcceptedTransferSyntaxes": (list, []),
    "DicomWeb": (dict, {}),
    "Transfers": (dict, {}),
    "Obelisk": (dict, {}),
}

#: Obelisk's own options, in the ``"Obelisk"`` section.
OBELISK_OPTIONS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    # "" = SQLite file "index.db" in IndexDirectory (or StorageDirectory); or a postgresql:// URL
    "Index": (str, ""),
    "BindAddress": (str, ""),
    # docs/security-and-observability.md: bearer tokens (name -> token), the user groups file,
    # and "text" or "json" log lines.
    "BearerTokens": (dict, {}),
    "PermissionsFile": (str, ""),
    "LogFormat": (str, "text"),
    # Try the next ports when HttpPort/DicomPort is busy, as 3D Slicer's web server does.
    "PortAutoIncrement": (bool, False),
    "PortAutoIncrementAttempts": (int, 20),
    # Largest number of instances committed to the index in one transaction.
    "GroupCommitMaxBatch": (int, 256),
    # Durability (docs/configuration.md): SQLite's "synchronous" (NORMAL as Orthanc, or FULL),
    # and an fsync of the storage folders that get new names (on top of SyncStorageArea).
    "IndexSynchronous": (str, "NORMAL"),
    "SyncDirectories": (bool, False),
    "StaticDocroot": (str, ""),
    "StaticDocrootPath": (str, "/static"),
    # docs/viewer-and-pixels.md: the OHIF viewer ("" = <repo>/.viewer/ohif, from
    # scripts/install-viewer) and the origins allowed by CORS (none: CORS off).
    "ViewerEnabled": (bool, True),
    "ViewerDirectory": (str, ""),
    "CorsAllowedOrigins": (list, []),
    # Jobs (docs/jobs.md): outputs folder ("" = <StorageDirectory>/jobs), the name of this server
    # in the shared job store ("" = host:HttpPort), lease length, and whether saved jobs are
    # loaded at start (the --no-jobs flag of "obelisk serve" sets it to false).
    "JobsDirectory": (str, ""),
    "JobsNode": (str, ""),
    "JobLeaseSeconds": ((int, float), 30),
    "LoadSavedJobs": (bool, True),
    # Serve store-only DICOM associations (storescu, C-MOVE sub-operations) with Obelisk's own
    # receive path instead of pynetdicom's (docs/dicom-network.md).
    "DicomStoreFastPath": (bool, True),
}


def strip_comments(text: str) -> str:
    """Removes ``//`` and ``/* */`` comments outside JSON strings."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


@dataclass
class Settings:
    """The merged configuration: Orthanc's keys as given, with defaults filled in."""

    values: dict[str, Any] = field(default_factory=dict)
    obelisk: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    @property
    def storage_directory(self) -> Path:
        return self._resolve(self.values["StorageDirectory"])

    @property
    def index_location(self) -> str:
        url = str(self.obelisk["Index"])
        if url:
            return url
        folder = self.values["IndexDirectory"] or self.values["StorageDirectory"]
        return str(self._resolve(folder) / "index.db")

    def resolve_path(self, path: str) -> Path:
        """A path from the settings: relative ones are relative to the configuration file."""
        return self._resolve(path)

    def _resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        if candidate.is_absolute() or self.source is None:
            return candidate
        return (self.source.parent / candidate).resolve()


def _check(key: str, value: Any, expected: type | tuple[type, ...]) -> Any:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if bool in kinds and isinstance(value, bool):
        return value
    if bool not in kinds and isinstance(value, bool):
        raise ConfigurationError(
            f'Bad type for configuration option "{key}": expected '
            f"{' or '.join(k.__name__ for k in kinds)}, got a boolean"
        )
    if int in kinds and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)  # Orthanc accepts numbers written as strings
    if not isinstance(value, kinds):
        raise ConfigurationError(
            f'Bad type for configuration option "{key}": expected '
            f"{' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}"
        )
    return value


def load_settings(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Reads a configuration file (or none), applies overrides, checks types, fills defaults."""
    raw: dict[str, Any] = {}
    source = None
    if path is not None:
        source = Path(path).resolve()
        files = sorted(source.glob("*.json")) if source.is_dir() else [source]
        for file in files:
            try:
                parsed = json.loads(strip_comments(file.read_text(encoding="utf-8")))
            except FileNotFoundError as exc:
                raise ConfigurationError(f"Configuration file not found: {file}") from exc
            except json.JSONDecodeError as exc:
                raise ConfigurationError(
                    f"Configuration file {file} is not valid JSON", details=str(exc)
                ) from exc
            if not isinstance(parsed, dict):
                raise ConfigurationError(f"Configuration file {file} must hold a JSON object")
            raw.update(parsed)
        if source.is_dir():
            source = source / "orthanc.json"
    raw.update(overrides or {})

    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in OPTIONS:
            values[key] = _check(key, value, OPTIONS[key][0])
        else:
            log.warning('Unknown configuration option "%s" (ignored)', key)
            values[key] = value
    for key, (_, default) in OPTIONS.items():
        values.setdefault(key, json.loads(json.dumps(default)))

    obelisk: dict[str, Any] = {}
    for key, value in values["Obelisk"].items():
        if key not in OBELISK_OPTIONS:
            log.warning('Unknown configuration option "Obelisk.%s" (ignored)', key)
            continue
        obelisk[key] = _check(f"Obelisk.{key}", value, OBELISK_OPTIONS[key][0])
    for key, (_, default) in OBELISK_OPTIONS.items():
        obelisk.setdefault(key, default)

    for port_key in ("HttpPort", "DicomPort"):
        if not 0 <= values[port_key] <= 65535:
            raise ConfigurationError(f'Configuration option "{port_key}" must be a TCP port')
    if values["StableAge"] < 0:
        raise ConfigurationError('Configuration option "StableAge" must not be negative')
    obelisk["IndexSynchronous"] = str(obelisk["IndexSynchronous"]).upper()
    if obelisk["IndexSynchronous"] not in ("NORMAL", "FULL"):
        raise ConfigurationError(
            'Configuration option "Obelisk.IndexSynchronous" must be "NORMAL" or "FULL"'
        )
    return Settings(values=values, obelisk=obelisk, source=source)
