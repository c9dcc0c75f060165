"""Orthanc's JSON for resources, changes and statistics: PascalCase lives here and nowhere else."""

from __future__ import annotations

from typing import Any

from obelisk.core.levels import Level
from obelisk.core.tags import MAIN_TAGS, PATIENT_MAIN_TAGS, format_tag
from obelisk.index.base import Change, ExportedResource
from obelisk.services.ingest import StoreResult
from obelisk.services.resources import ResourceStatistics, ResourceView

_TAG_OF_NAME = {name: tag for level in Level for tag, name in MAIN_TAGS[level]}
_PARENT_KEY = {
    Level.STUDY: "ParentPatient",
    Level.SERIES: "ParentStudy",
    Level.INSTANCE: "ParentSeries",
}
_CHILDREN_KEY = {Level.PATIENT: "Studies", Level.STUDY: "Series", Level.SERIES: "Instances"}


def format_main_tags(tags: dict[str, str], style: str) -> dict[str, Any]:
    """``style``: ``human`` (keywords), ``short`` (``gggg,eeee``) or ``full``."""
    if style == "human":
        return dict(tags)
    result: dict[str, Any] = {}
    for name, value in tags.items():
        key = format_tag(_TAG_OF_NAME[name])
        result[key] = (
            value if style == "short" else {"Name": name, "Type": "String", "Value": value}
        )
    return result


def resource_json(view: ResourceView, style: str = "human") -> dict[str, Any]:
    resource = view.resource
    level = resource.level
    body: dict[str, Any] = {
        "ID": resource.public_id,
        "Type": level.title,
        "MainDicomTags": format_main_tags(resource.main_tags, style),
    }
    if level in _PARENT_KEY:
        body[_PARENT_KEY[level]] = resource.parent_public_id
    if level in _CHILDREN_KEY:
        body[_CHILDREN_KEY[level]] = list(resource.children)
        body["IsStable"] = resource.is_stable
        body["LastUpdate"] = resource.last_update
    if level is Level.STUDY:
        patient_tags = resource.patient_tags or {}
        names = {name for _, name in PATIENT_MAIN_TAGS}
        body["PatientMainDicomTags"] = format_main_tags(
            {k: v for k, v in patient_tags.items() if k in names}, style
        )
    elif level is Level.SERIES:
        body["ExpectedNumberOfInstances"] = view.expected_instances
        body["Status"] = view.status
    elif level is Level.INSTANCE:
        body["FileSize"] = view.dicom.uncompressed_size if view.dicom else 0
        body["FileUuid"] = view.dicom.uuid if view.dicom else ""
        body["IndexInSeries"] = view.index_in_series
    return body


def store_json(result: StoreResult) -> dict[str, Any]:
    return {
        "ID": result.ids.instance,
        "ParentPatient": result.ids.patient,
        "ParentStudy": result.ids.study,
        "ParentSeries": result.ids.series,
        "Path": f"/instances/{result.ids.instance}",
        "Status": result.status.value,
    }


def change_json(change: Change) -> dict[str, Any]:
    return {
        "ChangeType": change.change_type.name,
        "Date": change.date,
        "ID": change.public_id,
        "Path": f"/{change.level.plural}/{change.public_id}",
        "ResourceType": change.level.title,
        "Seq": change.seq,
    }


def export_json(exported: ExportedResource) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Date": exported.date,
        "ID": exported.public_id,
        "Path": f"/{exported.level.plural}/{exported.public_id}",
        "RemoteModality": exported.remote_modality,
        "ResourceType": exported.level.title,
        "Seq": exported.seq,
        "PatientID": exported.patient_id,
    }
    if exported.level >= Level.STUDY:
        body["StudyInstanceUID"] = exported.study_uid
    if exported.level >= Level.SERIES:
        body["SeriesInstanceUID"] = exported.series_uid
    if exported.level >= Level.INSTANCE:
        body["SOPInstanceUID"] = exported.sop_instance_uid
    return body


def mb(size: int) -> int:
    return size // (1024 * 1024)


def statistics_json(stats: ResourceStatistics) -> dict[str, Any]:
    body: dict[str, Any] = {
        "DiskSize": str(stats.disk_size),
        "DiskSizeMB": mb(stats.disk_size),
        "UncompressedSize": str(stats.uncompressed_size),
        "UncompressedSizeMB": mb(stats.uncompressed_size),
        "DicomDiskSize": str(stats.dicom_disk_size),
        "DicomDiskSizeMB": mb(stats.dicom_disk_size),
        "DicomUncompressedSize": str(stats.dicom_uncompressed_size),
        "DicomUncompressedSizeMB": mb(stats.dicom_uncompressed_size),
    }
    for level, key in (
        (Level.STUDY, "CountStudies"),
        (Level.SERIES, "CountSeries"),
        (Level.INSTANCE, "CountInstances"),
    ):
        if level > stats.level:
            body[key] = stats.counts.get(level, 0)
    return body
