"""The ``DicomWeb`` configuration section, with the Orthanc DICOMweb plugin's names and defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from obelisk.config import Settings
from obelisk.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class DicomWebOptions:
    enable: bool = True
    #: Path prefix of QIDO/WADO/STOW-RS, without a trailing slash (``/dicom-web``).
    root: str = "/dicom-web"
    enable_wado: bool = True
    wado_root: str = "/wado"
    #: ``host[:port]`` written into RetrieveURL and BulkDataURI; empty = the request's Host.
    host: str = ""
    ssl: bool = False
    #: Orthanc's default is true; false here so that PatientName=doe* finds DOE^JOHN, as viewers
    #: expect (person names are compared without case or accents when false).
    qido_case_sensitive: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> DicomWebOptions:
        section: dict[str, Any] = settings.get("DicomWeb") or {}
        defaults = cls()

        def value(key: str, default: Any) -> Any:
            found = section.get(key, default)
            if not isinstance(found, type(default)):
                raise ConfigurationError(
                    f'Bad type for configuration option "DicomWeb.{key}": '
                    f"expected {type(default).__name__}"
                )
            return found

        return cls(
            enable=value("Enable", defaults.enable),
            root=_prefix(value("Root", "/dicom-web/")),
            enable_wado=value("EnableWado", defaults.enable_wado),
            wado_root=_prefix(value("WadoRoot", defaults.wado_root)),
            host=value("Host", defaults.host),
            ssl=value("Ssl", defaults.ssl),
            qido_case_sensitive=value("QidoCaseSensitive", defaults.qido_case_sensitive),
        )


def _prefix(path: str) -> str:
    """``dicom-web/`` → ``/dicom-web``; ``/`` stays ``""`` (routes at the server root)."""
    return "/" + path.strip("/") if path.strip("/") else ""
