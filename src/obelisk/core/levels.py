"""The four levels of the DICOM resource tree, in Orthanc's order."""

from __future__ import annotations

import enum


class Level(enum.IntEnum):
    PATIENT = 0
    STUDY = 1
    SERIES = 2
    INSTANCE = 3

    @property
    def title(self) -> str:
        """Orthanc's spelling in JSON (``"Patient"``)."""
        return self.name.capitalize()

    @property
    def plural(self) -> str:
        """The REST collection name (``patients``)."""
        return _PLURALS[self]

    @property
    def parent(self) -> Level | None:
        return None if self is Level.PATIENT else Level(self - 1)

    @property
    def child(self) -> Level | None:
        return None if self is Level.INSTANCE else Level(self + 1)

    @classmethod
    def from_plural(cls, plural: str) -> Level:
        return _BY_PLURAL[plural]

    @classmethod
    def parse(cls, text: str) -> Level:
        """Accepts ``Patient``, ``patient``, ``PATIENT``, ``Image`` (DICOM's QR name)."""
        key = text.strip().upper()
        if key == "IMAGE":
            return cls.INSTANCE
        return cls[key]


_PLURALS = {
    Level.PATIENT: "patients",
    Level.STUDY: "studies",
    Level.SERIES: "series",
    Level.INSTANCE: "instances",
}
_BY_PLURAL = {v: k for k, v in _PLURALS.items()}
