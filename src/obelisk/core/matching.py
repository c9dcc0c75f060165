"""Orthanc's matching rules for ``/tools/find`` and C-FIND: one parser, one in-memory matcher.

A query value becomes a :class:`Constraint`: ``*``/``?`` wildcards, ``A-B`` ranges on dates and
times, ``\\``-separated lists, or an exact value. Case-insensitive matching ignores case and
accents. Index back-ends translate constraints to SQL; the same objects
filter values read from files when a tag is not indexed.
"""

from __future__ import annotations

import enum
import fnmatch
import re
import unicodedata
from dataclasses import dataclass

from obelisk.core.levels import Level
from obelisk.core.tags import format_tag, main_tag_level, vr_of
from obelisk.errors import ParameterOutOfRange

_RANGE_VRS = {"DA", "DT", "TM"}
_UID_TAGS = {0x0020000D, 0x0020000E, 0x00080018}


class ConstraintKind(enum.Enum):
    EQUAL = "equal"
    WILDCARD = "wildcard"
    RANGE = "range"
    LIST = "list"


@dataclass(frozen=True, slots=True)
class Constraint:
    tag: int
    kind: ConstraintKind
    #: EQUAL/WILDCARD: one value; LIST: the values; RANGE: (lower, upper), "" = open end.
    values: tuple[str, ...]
    case_sensitive: bool = True

    @property
    def main_level(self) -> Level | None:
        return main_tag_level(self.tag)

    def matches(self, value: str | None) -> bool:
        """Whether a stored value satisfies the constraint (``None`` = tag absent)."""
        if value is None:
            return False
        candidate = value if self.case_sensitive else normalize(value)
        if self.kind is ConstraintKind.EQUAL:
            return candidate == self.values[0]
        if self.kind is ConstraintKind.LIST:
            return candidate in self.values
        if self.kind is ConstraintKind.WILDCARD:
            return wildcard_regex(self.values[0]).fullmatch(candidate) is not None
        lower, upper = self.values
        return (not lower or candidate >= lower) and (not upper or candidate <= upper)


def normalize(value: str) -> str:
    """Upper case without accents: how case-insensitive values are stored and compared."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern.replace("[", "[[]")), re.DOTALL)


def parse_constraint(tag: int, query: str, *, case_sensitive: bool) -> Constraint | None:
    """Turns one query value into a constraint; ``None`` when it matches everything.

    ``case_sensitive`` applies to every string tag, as ``/tools/find``'s ``CaseSensitive`` does in
    Orthanc (C-FIND passes ``CaseSensitivePN`` for person names and true for the rest). Wildcards
    on the three UIDs are refused, as in Orthanc.
    """
    query = query.strip()
    if tag in _UID_TAGS and ("*" in query or "?" in query):
        raise ParameterOutOfRange(f"Wildcards are not allowed on tag {format_tag(tag)}")
    if query in ("", "*"):
        return None
    vr = vr_of(tag)
    sensitive = case_sensitive or vr in _RANGE_VRS

    def prepare(text: str) -> str:
        return text if sensitive else normalize(text)

    if vr in _RANGE_VRS and "-" in query:
        lower, _, upper = query.partition("-")
        return Constraint(tag, ConstraintKind.RANGE, (lower.strip(), upper.strip()), True)
    if "\\" in query:
        items = tuple(prepare(item) for item in query.split("\\") if item != "")
        return Constraint(tag, ConstraintKind.LIST, items, sensitive)
    if "*" in query or "?" in query:
        return Constraint(tag, ConstraintKind.WILDCARD, (prepare(query),), sensitive)
    return Constraint(tag, ConstraintKind.EQUAL, (prepare(query),), sensitive)


def is_indexed(constraint: Constraint, level: Level) -> bool:
    """Whether the index can answer a constraint for a search at ``level``: main tags of that
    level or of its ancestors. Other tags must be read from the DICOM files."""
    main_level = constraint.main_level
    return main_level is not None and main_level <= level
