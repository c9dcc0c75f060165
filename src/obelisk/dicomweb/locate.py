"""From DICOMweb's UIDs in a URL to the resources of the index (Orthanc ids hash PatientID too)."""

from __future__ import annotations

from dataclasses import dataclass

from obelisk.core.levels import Level
from obelisk.errors import UnknownResource
from obelisk.index.base import Resource
from obelisk.services.resources import ResourceService

_UID_KEYS = {
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.INSTANCE: "SOPInstanceUID",
}


@dataclass(frozen=True, slots=True)
class Target:
    """What a WADO-RS URL names: a study, or a series or instance inside it."""

    study: str
    series: str | None = None
    instance: str | None = None

    @property
    def level(self) -> Level:
        if self.instance is not None:
            return Level.INSTANCE
        return Level.SERIES if self.series is not None else Level.STUDY


def locate(resources: ResourceService, target: Target) -> Resource:
    """The resource named by ``target``, checking that it sits below the named ancestors."""
    level = target.level
    uid = {Level.STUDY: target.study, Level.SERIES: target.series, Level.INSTANCE: target.instance}
    wanted = uid[level]
    assert wanted is not None
    for candidate in resources.lookup(wanted):
        if candidate.level is level and _ancestors_match(resources, candidate, uid):
            return candidate
    raise UnknownResource(f"No {level.title.lower()} with {_UID_KEYS[level]}={wanted}")


def _ancestors_match(
    resources: ResourceService, resource: Resource, uids: dict[Level, str | None]
) -> bool:
    current = resource
    while current.level > Level.STUDY and current.parent_public_id is not None:
        current = resources.get_any(current.parent_public_id)
        expected = uids.get(current.level)
        if expected and current.main_tags.get(_UID_KEYS[current.level]) != expected:
            return False
    return True


def instance_uids(resources: ResourceService, instance: Resource) -> tuple[str, str, str]:
    """(study, series, SOP instance) UIDs of an instance, for URLs."""
    series = resources.get_any(instance.parent_public_id or "")
    study = resources.get_any(series.parent_public_id or "")
    return (
        study.main_tags.get("StudyInstanceUID", ""),
        series.main_tags.get("SeriesInstanceUID", ""),
        instance.main_tags.get("SOPInstanceUID", ""),
    )
