"""The order of a series' slices in space (Orthanc's deprecated ``/series/{id}/ordered-slices``).

Slices are sorted along the normal of the series' ImageOrientationPatient when every instance has
an ImagePositionPatient and no two share a position: that is a volume. Otherwise they are sorted
by their index in the series (a sequence). A single instance is a sequence, as in Orthanc 1.10.1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

#: Positions closer than this along the normal are the same position (Orthanc: 10 float epsilons).
_SAME_POSITION = 10 * 1.1920929e-07


@dataclass(frozen=True, slots=True)
class Slice:
    public_id: str
    position: tuple[float, float, float] | None
    index_in_series: int | None
    frames: int = 1


def parse_vector(text: str | None, size: int) -> tuple[float, ...] | None:
    """A backslash-separated DICOM vector of exactly ``size`` numbers, else None."""
    if not text:
        return None
    parts = text.split("\\")
    if len(parts) != size:
        return None
    try:
        return tuple(float(part) for part in parts)
    except ValueError:
        return None


def normal_of(orientation: str | None) -> tuple[float, float, float] | None:
    """The cross product of the row and column cosines of ImageOrientationPatient."""
    cosines = parse_vector(orientation, 6)
    if cosines is None:
        return None
    r0, r1, r2, c0, c1, c2 = cosines
    return (r1 * c2 - r2 * c1, r2 * c0 - r0 * c2, r0 * c1 - r1 * c0)


def order_slices(
    slices: Sequence[Slice], normal: tuple[float, float, float] | None
) -> tuple[list[Slice], bool] | None:
    """``(slices in order, is_volume)``, or None when they cannot be ordered."""
    if len(slices) <= 1:
        return list(slices), False
    if normal is not None and all(s.position is not None for s in slices):

        def along_normal(s: Slice) -> float:
            assert s.position is not None
            return sum(n * p for n, p in zip(normal, s.position, strict=True))

        ordered = sorted(slices, key=along_normal)
        distances = [along_normal(b) - along_normal(a) for a, b in pairwise(ordered)]
        if all(abs(d) > _SAME_POSITION for d in distances):
            return ordered, True
    if all(s.index_in_series is not None for s in slices):
        return sorted(slices, key=lambda s: s.index_in_series or 0), False
    return None
