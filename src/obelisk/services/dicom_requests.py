"""What the DICOM server answers: C-FIND from the index, the instances a C-MOVE/C-GET designates.

C-FIND uses the same :class:`~obelisk.services.find.FindService` (and so the same matching) as
``/tools/find``. Answers carry the keys of the request: main tags of the resource and of its
ancestors from the index, the computed ``NumberOf…Related…``/``ModalitiesInStudy`` attributes,
and any other tag read from one instance's file (only when asked for).
"""

from __future__ import annotations

from collections.abc import Sequence

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement

from obelisk.core.changes import MetadataType
from obelisk.core.dicom_json import element_text
from obelisk.core.levels import Level
from obelisk.core.tags import keyword as tag_keyword
from obelisk.index.base import Resource
from obelisk.services.find import FindRequest, FindService
from obelisk.services.resources import ResourceService

QUERY_RETRIEVE_LEVEL = 0x00080052
SPECIFIC_CHARACTER_SET = 0x00080005
RETRIEVE_AE_TITLE = 0x00080054
MODALITIES_IN_STUDY = 0x00080061
SOP_CLASSES_IN_STUDY = 0x00080062
#: Not query keys: never turned into constraints.
_NOT_CONSTRAINTS = {QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET, RETRIEVE_AE_TITLE}
#: ``NumberOf…Related…`` attribute → (level it applies to, level counted).
_COUNTERS = {
    0x00201200: (Level.PATIENT, Level.STUDY),
    0x00201202: (Level.PATIENT, Level.SERIES),
    0x00201204: (Level.PATIENT, Level.INSTANCE),
    0x00201206: (Level.STUDY, Level.SERIES),
    0x00201208: (Level.STUDY, Level.INSTANCE),
    0x00201209: (Level.SERIES, Level.INSTANCE),
}
#: The unique key of each level: what C-MOVE/C-GET identifiers designate.
UNIQUE_KEYS = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.INSTANCE: "SOPInstanceUID",
}


def query_of(identifier: pydicom.Dataset) -> dict[str, str]:
    """The constraints of a C-FIND identifier, as ``/tools/find`` takes them."""
    query: dict[str, str] = {}
    for element in identifier:
        if element.VR == "SQ" or int(element.tag) in _NOT_CONSTRAINTS or element.tag.group == 2:
            continue
        text = element_text(element)
        if text:
            query[f"{element.tag.group:04X},{element.tag.element:04X}"] = text
    return query


class DicomRequestService:
    def __init__(
        self, find: FindService, resources: ResourceService, *, case_sensitive_pn: bool
    ) -> None:
        self._find = find
        self._resources = resources
        self._case_sensitive = case_sensitive_pn

    def find(
        self, level: Level, identifier: pydicom.Dataset, local_aet: str
    ) -> list[pydicom.Dataset]:
        request = FindRequest(
            level,
            query_of(identifier),
            case_sensitive=self._case_sensitive,
            case_rule_for_names_only=True,
        )
        ids = self._find.find(request)
        resources = self._resources.index.get_by_internal_ids(ids, children=False)
        ancestors = self._ancestor_tags(resources)
        requested = [int(e.tag) for e in identifier if e.tag.group != 2]
        return [
            self._answer(level, resource, ancestors, requested, identifier, local_aet)
            for resource in resources
        ]

    def _ancestor_tags(self, resources: Sequence[Resource]) -> dict[int, dict[str, str]]:
        """Main tags of each resource and its ancestors, ancestors fetched one level per query."""
        cache: dict[int, Resource] = {}
        wanted = {r.parent_internal_id for r in resources if r.parent_internal_id is not None}
        while wanted:
            fetched = self._resources.index.get_by_internal_ids(sorted(wanted), children=False)
            cache.update((p.internal_id, p) for p in fetched)
            wanted = {
                p.parent_internal_id for p in fetched if p.parent_internal_id is not None
            } - cache.keys()
        merged: dict[int, dict[str, str]] = {}
        for resource in resources:
            tags: dict[str, str] = {}
            node: Resource | None = resource
            while node is not None:
                for source in (node.main_tags, node.patient_tags or {}):
                    for key, value in source.items():
                        tags.setdefault(key, value)
                parent = node.parent_internal_id
                node = cache.get(parent) if parent is not None else None
            merged[resource.internal_id] = tags
        return merged

    def _answer(
        self,
        level: Level,
        resource: Resource,
        ancestors: dict[int, dict[str, str]],
        requested: list[int],
        identifier: pydicom.Dataset,
        local_aet: str,
    ) -> pydicom.Dataset:
        known = ancestors.get(resource.internal_id, {})
        answer = pydicom.Dataset()
        if SPECIFIC_CHARACTER_SET in identifier:
            answer.SpecificCharacterSet = "ISO_IR 192"
        file_dataset: pydicom.Dataset | None = None
        for tag in requested:
            if tag in (SPECIFIC_CHARACTER_SET, QUERY_RETRIEVE_LEVEL, RETRIEVE_AE_TITLE):
                continue
            value = self._computed(level, resource, tag)
            if value is None:
                value = known.get(tag_keyword(tag))
            if value is None:
                if file_dataset is None:
                    file_dataset = self._resources.dataset(
                        self._resources.any_instance(level, resource.public_id),
                        stop_before_pixels=True,
                    )
                element = file_dataset.get(tag)
                if element is not None and element.VR == "SQ":
                    answer[tag] = element
                    continue
                value = "" if element is None else element_text(element)
            answer[tag] = _element(tag, value, identifier)
        answer.QueryRetrieveLevel = "IMAGE" if level is Level.INSTANCE else level.name
        answer.RetrieveAETitle = local_aet
        return answer

    def _computed(self, level: Level, resource: Resource, tag: int) -> str | None:
        if tag in _COUNTERS:
            applies_to, counted = _COUNTERS[tag]
            if applies_to is not level:
                return None
            found = self._resources.descendants(level, resource.public_id, counted)
            return str(len(found))
        if tag in (MODALITIES_IN_STUDY, SOP_CLASSES_IN_STUDY) and level is Level.STUDY:
            key = "Modality" if tag == MODALITIES_IN_STUDY else None
            if key is None:
                return None  # SOP classes come from the files, like any other tag
            series = self._resources.descendants(level, resource.public_id, Level.SERIES)
            values = sorted({v.resource.main_tags.get(key, "") for v in series} - {""})
            return "\\".join(values)
        return None

    def instances_to_retrieve(
        self, level: Level, identifier: pydicom.Dataset
    ) -> list[tuple[str, str, str]]:
        """(public id, SOP class, transfer syntax) of the instances a C-MOVE/C-GET identifier
        designates through the unique keys of its level and the levels above."""
        query: dict[str, str] = {}
        for key_level, keyword in UNIQUE_KEYS.items():
            if key_level <= level and keyword in identifier:
                value = element_text(identifier[keyword])
                if value:
                    query[keyword] = value
        if not query:
            return []
        index = self._resources.index
        found = []
        for internal_id in self._find.find(FindRequest(level, query, case_sensitive=True)):
            found.extend(index.instance_files(internal_id))
        internal = [f.internal_id for f in found]
        classes = index.metadata_of_many(internal, MetadataType.SopClassUid)
        syntaxes = index.metadata_of_many(internal, MetadataType.TransferSyntax)
        return [
            (f.public_id, classes.get(f.internal_id, ""), syntaxes.get(f.internal_id, ""))
            for f in found
        ]

    def dataset(self, public_id: str) -> pydicom.Dataset:
        return self._resources.dataset(public_id)


def _element(tag: int, value: str, identifier: pydicom.Dataset) -> DataElement:
    vr = identifier[tag].VR if tag in identifier else dictionary_VR(tag)
    if vr in ("US", "UL", "SS", "SL", "FL", "FD", "US or SS"):
        numbers = [n for n in value.split("\\") if n]
        cast = float if vr in ("FL", "FD") else int
        parsed = [cast(n) for n in numbers]
        return DataElement(
            tag, vr if " " not in vr else "US", parsed[0] if len(parsed) == 1 else parsed
        )
    return DataElement(tag, vr, value)
