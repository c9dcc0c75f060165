"""Paths to tags inside sequences, as Orthanc's ``DicomPath`` (the syntax of DCMTK's dcmodify).

A path is zero or more sequence steps, each a tag with an item index in brackets, then a final tag:
``ReferencedImageSequence[0].ReferencedSOPInstanceUID``, ``0008,1140[*].0008,1155`` or
``(0008,1140)[1].(0008,1155)``. Indexes count from 0; ``*`` stands for every item. Tags are
keywords, ``gggg,eeee`` (optionally in parentheses) or names from the ``Dictionary`` option.
A path without sequence steps is a plain tag. Orthanc 1.9.4+ accepts such paths in ``Replace``,
``Remove`` and ``Keep`` of ``/modify`` and ``/anonymize``; a malformed path is 400 "Parameter out
of range" there too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from obelisk.core.tags import format_tag
from obelisk.errors import ParameterOutOfRange

#: The index of a step that matches every item (``[*]``).
ANY_ITEM = -1

#: Where an element sits: the (sequence tag, item index) steps from the top-level dataset.
Location = Sequence[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class TagPath:
    steps: tuple[tuple[int, int], ...]  # (sequence tag, item index or ANY_ITEM)
    tag: int

    @property
    def is_plain(self) -> bool:
        """A top-level tag, no sequence step."""
        return not self.steps

    @property
    def top_tag(self) -> int:
        """The top-level tag the path starts from (the sequence, or the tag itself)."""
        return self.steps[0][0] if self.steps else self.tag

    @classmethod
    def parse(cls, text: str, resolve: Callable[[str], int]) -> TagPath:
        """``resolve`` turns one tag token into a tag (and raises for unknown names)."""
        tokens = text.strip().split(".")
        steps: list[tuple[int, int]] = []
        for token in tokens[:-1]:
            name, bracket, rest = token.partition("[")
            if not bracket or not rest.endswith("]"):
                raise ParameterOutOfRange("Parent path doesn't contain an index", details=text)
            index = rest[:-1].strip()
            if index == "*":
                steps.append((_tag(name, resolve, text), ANY_ITEM))
            elif index.isdigit():
                steps.append((_tag(name, resolve, text), int(index)))
            else:
                raise ParameterOutOfRange("Bad item index in a path to a DICOM tag", details=text)
        if "[" in tokens[-1] or "]" in tokens[-1]:
            raise ParameterOutOfRange(
                "The last tag of a path cannot have an item index", details=text
            )
        return cls(tuple(steps), _tag(tokens[-1], resolve, text))

    def format(self) -> str:
        """Canonical text, e.g. ``0008,1140[*].0008,1155`` (parsed back by :meth:`parse`)."""
        parts = [f"{format_tag(t)}[{'*' if i == ANY_ITEM else i}]" for t, i in self.steps]
        return ".".join([*parts, format_tag(self.tag)])

    def matches(self, location: Location, tag: int) -> bool:
        """Whether the element ``tag`` found at ``location`` is the one this path points to."""
        if tag != self.tag or len(location) != len(self.steps):
            return False
        return all(
            found_tag == step_tag and index in (ANY_ITEM, found_index)
            for (found_tag, found_index), (step_tag, index) in zip(
                location, self.steps, strict=True
            )
        )

    def holders(self, ds: Dataset) -> Iterator[Dataset]:
        """The existing datasets (``ds`` or sequence items) in which the final tag lives."""
        current = [ds]
        for tag, index in self.steps:
            found: list[Dataset] = []
            for holder in current:
                element = holder.get(tag)
                if element is None or element.VR != "SQ" or not element.value:
                    continue
                items = list(element.value)
                if index == ANY_ITEM:
                    found.extend(items)
                elif index < len(items):
                    found.append(items[index])
            current = found
        yield from current


def _tag(token: str, resolve: Callable[[str], int], text: str) -> int:
    token = token.strip()
    if token.startswith("(") and token.endswith(")"):
        token = token[1:-1]
    if not token:
        raise ParameterOutOfRange("Empty tag in a path to a DICOM tag", details=text)
    return resolve(token)
