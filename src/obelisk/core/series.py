"""How many instances a series announces, and whether it has them all (Orthanc's rules)."""

from __future__ import annotations


def _positive(tags: dict[str, str], name: str) -> int | None:
    text = tags.get(name, "").split("\\")[0].strip()
    try:
        value = int(float(text))
    except ValueError:
        return None
    return value if value > 0 else None


def expected_instances(series_tags: dict[str, str]) -> int | None:
    """``ExpectedNumberOfInstances`` from a series' main tags, as Orthanc 1.10.1 computes it.

    CardiacNumberOfImages counts alone; ImagesInAcquisition only with NumberOfTemporalPositions
    (alone it is too often wrong, so Orthanc ignores it), NumberOfSlices only with
    NumberOfTimeSlices.
    """
    cardiac = _positive(series_tags, "CardiacNumberOfImages")
    if cardiac is not None:
        return cardiac
    images = _positive(series_tags, "ImagesInAcquisition")
    temporal = _positive(series_tags, "NumberOfTemporalPositions")
    if images is not None and temporal is not None:
        return images * temporal
    slices = _positive(series_tags, "NumberOfSlices")
    time_slices = _positive(series_tags, "NumberOfTimeSlices")
    if slices is not None and time_slices is not None:
        return slices * time_slices
    return None


def series_status(expected: int | None, indexes_in_series: list[int | None]) -> str:
    """``Unknown``, ``Complete``, ``Missing`` or ``Inconsistent``, as in ``GET /series/{id}``."""
    if expected is None:
        return "Unknown"
    seen: set[int] = set()
    for index in indexes_in_series:
        if index is None or index < 1 or index > expected or index in seen:
            return "Inconsistent"
        seen.add(index)
    return "Complete" if len(seen) == expected else "Missing"
