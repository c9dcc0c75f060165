"""What DICOMweb answers need beyond ``/tools/find``: per-resource counts, instance headers.

QIDO-RS reports NumberOfStudyRelatedSeries/Instances, ModalitiesInStudy and
NumberOfSeriesRelatedInstances for every result; they are computed here for a whole page of
results with a constant number of queries, not one query per result.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import pydicom

from obelisk.core.changes import MetadataType
from obelisk.core.levels import Level
from obelisk.errors import BadFileFormat
from obelisk.index.base import Index, Resource
from obelisk.services.resources import ResourceService


@dataclass(slots=True)
class RelatedCounts:
    series: int = 0
    instances: int = 0
    modalities: list[str] = field(default_factory=list)


def related_counts(index: Index, resources: Sequence[Resource]) -> dict[int, RelatedCounts]:
    """Counts below each study or series of ``resources`` (series given with their children)."""
    counts: dict[int, RelatedCounts] = {}
    studies = [r for r in resources if r.level is Level.STUDY]
    for resource in resources:
        if resource.level is Level.SERIES:
            counts[resource.internal_id] = RelatedCounts(1, len(resource.children))
    if not studies:
        return counts
    for study in studies:
        counts[study.internal_id] = RelatedCounts()
    for series in index.child_counts([r.internal_id for r in studies]):
        found = counts[series.parent_internal_id]
        found.series += 1
        found.instances += series.children
        modality = series.main_tags.get("Modality")
        if modality and modality not in found.modalities:
            found.modalities.append(modality)
    for found in counts.values():
        found.modalities.sort()
    return counts


def sop_class_uids(index: Index, instance_ids: Sequence[int]) -> dict[int, str]:
    return index.metadata_of_many(instance_ids, MetadataType.SopClassUid)


def transfer_syntaxes(index: Index, instance_ids: Sequence[int]) -> dict[int, str]:
    return index.metadata_of_many(instance_ids, MetadataType.TransferSyntax)


def instance_header(resources: ResourceService, public_id: str) -> pydicom.Dataset:
    """The attributes of a stored instance up to its pixel data, reading only those bytes."""
    instance = resources.get(Level.INSTANCE, public_id)
    offsets = resources.index.metadata_of_many([instance.internal_id], MetadataType.PixelDataOffset)
    attachment = resources.dicom_attachment(public_id)
    offset = offsets.get(instance.internal_id)
    if offset is not None and offset.isdigit():
        data = resources.reader.read_range(attachment, 0, int(offset))
    else:
        data = resources.reader.read(attachment)
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:
        raise BadFileFormat(f"Cannot parse the stored file of {public_id}") from exc
