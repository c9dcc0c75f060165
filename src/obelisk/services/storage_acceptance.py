"""What the C-STORE SCP accepts: transfer syntaxes and unknown SOP classes, changeable at runtime.

Orthanc 1.10.1's rules: the accepted set starts from ``AcceptedTransferSyntaxes`` (UIDs or
wildcard patterns, ``?`` and ``*``, matched against the transfer syntaxes Orthanc knows) or,
without it, from every known transfer syntax; then each ``…TransferSyntaxAccepted`` option set
to ``false`` removes its group. ``PUT /tools/accepted-transfer-syntaxes`` replaces the set and
``PUT /tools/unknown-sop-class-accepted`` the promiscuous mode; the DICOM server reads both for
each new association (both receive paths).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from obelisk.core.matching import wildcard_regex

#: Every transfer syntax Orthanc 1.10.1 knows, in the order ``GET`` lists them.
KNOWN_SYNTAXES: tuple[str, ...] = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
    *(f"1.2.840.10008.1.2.4.{n}" for n in range(50, 67)),
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    *(f"1.2.840.10008.1.2.4.{n}" for n in range(90, 96)),
    *(f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109)),
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.6.1",
    "1.2.840.10008.1.2.6.2",
)
#: Orthanc option → the group of transfer syntaxes it switches.
SYNTAX_GROUPS: dict[str, tuple[str, ...]] = {
    "DeflatedTransferSyntaxAccepted": ("1.2.840.10008.1.2.1.99",),
    "JpegTransferSyntaxAccepted": (
        *(f"1.2.840.10008.1.2.4.{n}" for n in range(50, 67)),
        "1.2.840.10008.1.2.4.70",
    ),
    "JpegLosslessTransferSyntaxAccepted": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "Jpeg2000TransferSyntaxAccepted": tuple(f"1.2.840.10008.1.2.4.{n}" for n in range(90, 94)),
    "JpipTransferSyntaxAccepted": ("1.2.840.10008.1.2.4.94", "1.2.840.10008.1.2.4.95"),
    "Mpeg2TransferSyntaxAccepted": ("1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101"),
    "Mpeg4TransferSyntaxAccepted": tuple(f"1.2.840.10008.1.2.4.{n}" for n in range(102, 107)),
    "RleTransferSyntaxAccepted": ("1.2.840.10008.1.2.5",),
    "H265TransferSyntaxAccepted": ("1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108"),
}


def matching_syntaxes(patterns: Iterable[str]) -> list[str]:
    """The known transfer syntaxes matched by any of ``patterns`` (``?``/``*`` wildcards)."""
    compiled = [wildcard_regex(p) for p in patterns]
    return [uid for uid in KNOWN_SYNTAXES if any(c.fullmatch(uid) for c in compiled)]


def configured_syntaxes(values: dict[str, Any]) -> list[str]:
    """The accepted transfer syntaxes as the settings say (see the module docstring).

    Obelisk fills in the defaults of the ``…TransferSyntaxAccepted`` options (``true``), so only
    those set to ``false`` can be told apart from absent ones: they remove their group.
    """
    explicit = [str(s) for s in values.get("AcceptedTransferSyntaxes") or []]
    accepted = set(matching_syntaxes(explicit) if explicit else KNOWN_SYNTAXES)
    for option, group in SYNTAX_GROUPS.items():
        if values.get(option, True) is False:
            accepted.difference_update(group)
    return [uid for uid in KNOWN_SYNTAXES if uid in accepted]


class StorageAcceptance:
    """The C-STORE SCP's accepted transfer syntaxes and promiscuous mode; thread-safe."""

    def __init__(self, syntaxes: Iterable[str], unknown_sop_classes: bool) -> None:
        self._lock = threading.Lock()
        self._syntaxes = frozenset(syntaxes)
        self._unknown = unknown_sop_classes

    @classmethod
    def from_settings(cls, values: dict[str, Any]) -> StorageAcceptance:
        return cls(configured_syntaxes(values), bool(values.get("UnknownSopClassAccepted")))

    def syntaxes(self) -> list[str]:
        with self._lock:
            current = self._syntaxes
        return [uid for uid in KNOWN_SYNTAXES if uid in current]

    def set_syntaxes(self, patterns: Iterable[str]) -> list[str]:
        """Replaces the accepted set with the known syntaxes ``patterns`` match; answers it."""
        matched = matching_syntaxes(patterns)
        with self._lock:
            self._syntaxes = frozenset(matched)
        return matched

    def accepts_syntax(self, uid: str) -> bool:
        with self._lock:
            return uid in self._syntaxes

    @property
    def unknown_sop_classes(self) -> bool:
        with self._lock:
            return self._unknown

    @unknown_sop_classes.setter
    def unknown_sop_classes(self, accepted: bool) -> None:
        with self._lock:
            self._unknown = accepted
