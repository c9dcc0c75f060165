"""Media types and transfer syntaxes: parsing ``Accept`` and choosing what to send.

An ``Accept`` header is a comma-separated list of media ranges, each with parameters such as
``type="application/dicom"`` and ``transfer-syntax=*`` (quoted or not — OHIF drops the quotes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.uid import UID

AS_STORED = "*"

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTET_STREAM = "application/octet-stream"
MULTIPART_RELATED = "multipart/related"

#: PS3.18 Table 8.7.3-2: the media type of compressed pixel data, per transfer syntax.
PIXEL_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jll",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.5": "image/x-dicom-rle",
}


@dataclass(frozen=True, slots=True)
class MediaRange:
    """One entry of an ``Accept`` header (or a ``Content-Type``), lower-cased, quotes removed."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    quality: float = 1.0

    @property
    def part_type(self) -> str:
        """For ``multipart/related``: the ``type`` parameter (the media type of each part)."""
        return self.params.get("type", "").split(";")[0].strip()

    @property
    def transfer_syntax(self) -> str | None:
        found = self.params.get("transfer-syntax")
        if found is None and ";" in self.params.get("type", ""):
            # type="application/octet-stream; transfer-syntax=…", as Orthanc itself answers
            inner = parse_media_type(self.params["type"])
            found = inner.params.get("transfer-syntax")
        return found

    def matches(self, media_type: str) -> bool:
        wanted, _, wanted_sub = media_type.partition("/")
        main, _, sub = self.media_type.partition("/")
        return main in ("*", wanted) and sub in ("*", wanted_sub)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def parse_media_type(text: str) -> MediaRange:
    head, *rest = _split_outside_quotes(text, ";")
    params: dict[str, str] = {}
    quality = 1.0
    for item in rest:
        key, _, value = item.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"').strip()
        if key == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
        elif key:
            params[key] = value if key == "boundary" else value.lower()
    return MediaRange(head.strip().lower(), params, quality)


def parse_accept(header: str | None) -> list[MediaRange]:
    """Media ranges by decreasing quality; an absent or empty header accepts anything."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges = [parse_media_type(p) for p in _split_outside_quotes(header, ",") if p.strip()]
    return sorted((r for r in ranges if r.quality > 0), key=lambda r: -r.quality)


def is_known_transfer_syntax(uid: str) -> bool:
    return uid == AS_STORED or UID(uid).is_transfer_syntax
