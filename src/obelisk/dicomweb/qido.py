"""QIDO-RS: query parameters → a find request → DICOM JSON results (PS3.18 §10.6).

Matching attributes go to :class:`~obelisk.services.find.FindService` (index for main tags,
files for the rest); results are built from the index rows plus the computed counts, reading a
file only for ``includefield`` attributes that are not main tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from obelisk.core.dicom_json import element_text
from obelisk.core.levels import Level
from obelisk.core.tags import keyword, main_tag_level, parse_tag, vr_of
from obelisk.dicomweb.dicom_json import JsonObject, attribute, from_text, tag_key
from obelisk.dicomweb.locate import Target
from obelisk.errors import BadRequest
from obelisk.index.base import Resource
from obelisk.services.context import Services
from obelisk.services.dicomweb import (
    RelatedCounts,
    instance_header,
    related_counts,
    sop_class_uids,
)
from obelisk.services.find import FindRequest

SPECIFIC_CHARACTER_SET = 0x00080005
SOP_CLASS_UID = 0x00080016
INSTANCE_AVAILABILITY = 0x00080056
MODALITIES_IN_STUDY = 0x00080061
MODALITY = 0x00080060
RETRIEVE_URL = 0x00081190
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
STUDY_RELATED_SERIES = 0x00201206
STUDY_RELATED_INSTANCES = 0x00201208
SERIES_RELATED_INSTANCES = 0x00201209

#: PS3.18 Tables 6.7.1-2/2a (Orthanc's choice where the standard says "if present").
DEFAULT_FIELDS: dict[Level, tuple[int, ...]] = {
    Level.STUDY: (
        0x00080020, 0x00080030, 0x00080050, INSTANCE_AVAILABILITY, MODALITIES_IN_STUDY,
        0x00080090, 0x00100010, 0x00100020, 0x00100030, 0x00100040, STUDY_INSTANCE_UID,
        0x00200010, STUDY_RELATED_SERIES, STUDY_RELATED_INSTANCES, RETRIEVE_URL,
    ),
    Level.SERIES: (
        0x00080060, 0x0008103E, SERIES_INSTANCE_UID, 0x00200011, SERIES_RELATED_INSTANCES,
        INSTANCE_AVAILABILITY, RETRIEVE_URL, STUDY_INSTANCE_UID,
    ),
    Level.INSTANCE: (
        SOP_CLASS_UID, 0x00080018, INSTANCE_AVAILABILITY, 0x00200013, 0x00280008,
        RETRIEVE_URL, STUDY_INSTANCE_UID, SERIES_INSTANCE_UID,
        0x00280010, 0x00280011, 0x00280100,  # Rows, Columns, BitsAllocated: from the header
    ),
}  # fmt: skip
#: Attributes the server computes; as matching keys they are accepted and ignored.
COMPUTED = frozenset(
    {
        SPECIFIC_CHARACTER_SET,
        SOP_CLASS_UID,
        INSTANCE_AVAILABILITY,
        RETRIEVE_URL,
        STUDY_RELATED_SERIES,
        STUDY_RELATED_INSTANCES,
        SERIES_RELATED_INSTANCES,
        0x00080201,  # TimezoneOffsetFromUTC
    }
)
#: Attributes describing the resource itself, left out when it is the parent of a result.
_OWN_ATTRIBUTES = frozenset(
    {
        MODALITIES_IN_STUDY,
        STUDY_RELATED_SERIES,
        STUDY_RELATED_INSTANCES,
        SERIES_RELATED_INSTANCES,
        RETRIEVE_URL,
        INSTANCE_AVAILABILITY,
    }
)
_LIST_VRS = {"UI", "CS"}  # a comma can only be a value separator in these VRs
_CONTROL = {"limit", "offset", "fuzzymatching", "includefield"}


@dataclass(frozen=True, slots=True)
class QidoQuery:
    level: Level
    #: Matching keys: tag → DICOM matching value (``*``/``?``, ``a-b`` ranges, ``\\`` lists).
    filters: dict[int, str]
    include: frozenset[int] = frozenset()
    include_all: bool = False
    limit: int | None = None
    offset: int = 0
    fuzzy: bool = False
    #: Set for nested URLs (``/studies/{uid}/series``): the ancestors' attributes are known.
    scope: Target | None = None


def parse_query(level: Level, pairs: Sequence[tuple[str, str]], scope: Target | None) -> QidoQuery:
    """``pairs`` are the decoded query parameters, in order, keys repeated as sent."""
    filters: dict[int, str] = {}
    include: set[int] = set()
    include_all = False
    limit: int | None = None
    offset = 0
    fuzzy = False
    for key, value in pairs:
        name = key.strip().lower()
        if name == "includefield":
            for item in value.split(","):
                if item.strip().lower() == "all":
                    include_all = True
                elif item.strip():
                    include.add(_tag(item))
        elif name in ("limit", "offset"):
            number = _non_negative(name, value)
            # limit=0 means no limit, as Limit=0 does in /tools/find
            limit, offset = (number or None, offset) if name == "limit" else (limit, number)
        elif name == "fuzzymatching":
            if value.lower() not in ("true", "false"):
                raise BadRequest('"fuzzymatching" must be "true" or "false"')
            fuzzy = value.lower() == "true"
        else:
            tag = _tag(key)
            if tag not in COMPUTED:
                filters[tag] = _matching_value(tag, value)
    if fuzzy:  # fuzzymatching may come after the keys it applies to
        filters = {t: _fuzzy(t, v) for t, v in filters.items()}
    if scope is not None:
        filters[STUDY_INSTANCE_UID] = scope.study
        if scope.series is not None:
            filters[SERIES_INSTANCE_UID] = scope.series
    return QidoQuery(level, filters, frozenset(include), include_all, limit, offset, fuzzy, scope)


@lru_cache(maxsize=1024)  # the same few keys come with every request; errors are not cached
def _tag(text: str) -> int:
    if "." in text:
        raise BadRequest(f"Sequence attributes cannot be matched: {text}")
    try:
        return parse_tag(text.strip())
    except ValueError as exc:
        raise BadRequest(f"Unknown attribute in the QIDO-RS query: {text}") from exc


def _non_negative(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise BadRequest(f'"{name}" must be a non-negative integer, got "{value}"')
    return number


@lru_cache(maxsize=1024)
def _vr(tag: int) -> str | None:
    return vr_of(tag)


def _matching_value(tag: int, value: str) -> str:
    if _vr(tag) in _LIST_VRS:
        value = "\\".join(v.strip() for v in value.split(","))
    return value


def _fuzzy(tag: int, value: str) -> str:
    """Fuzzy person-name matching: a value without wildcards matches any part of the name."""
    if _vr(tag) != "PN" or not value or "*" in value or "?" in value or "\\" in value:
        return value
    return f"*{value}*"


# -- running a query ---------------------------------------------------------------------------


def search(
    services: Services, query: QidoQuery, base_url: str, case_sensitive: bool
) -> list[JsonObject]:
    request = FindRequest(
        level=query.level,
        query={tag_key(tag): value for tag, value in query.filters.items()},
        case_sensitive=case_sensitive,
        limit=query.limit,
        since=query.offset,
    )
    ids = services.find.find(request)
    # series need their children (the instance count); studies get theirs from related_counts
    found = services.index.get_by_internal_ids(ids, children=query.level is Level.SERIES)
    return ResultBuilder(services, query, base_url).build(found)


@dataclass(frozen=True, slots=True)
class _Field:
    """A returned attribute, with what rendering it needs looked up once per query."""

    tag: int
    key: str
    keyword: str
    vr: str
    level: Level | None
    computed: bool

    @classmethod
    @lru_cache(maxsize=4096)  # fields are immutable and the same ones serve every query
    def of(cls, tag: int) -> _Field:
        vr = vr_of(tag) or "UN"
        computed = tag in COMPUTED or tag in (MODALITIES_IN_STUDY, MODALITY)
        return cls(tag, tag_key(tag), keyword(tag), vr, main_tag_level(tag), computed)


class ResultBuilder:
    """Turns found resources into DICOM JSON objects, a page at a time."""

    def __init__(self, services: Services, query: QidoQuery, base_url: str) -> None:
        self._services = services
        self._query = query
        self._base = base_url
        self._ancestors: dict[int, Resource] = {}

    def build(self, found: Sequence[Resource]) -> list[JsonObject]:
        index = self._services.index
        counts = related_counts(index, found)
        sop_classes = (
            sop_class_uids(index, [r.internal_id for r in found])
            if self._query.level is Level.INSTANCE
            else {}
        )
        self._load_ancestors(found)
        fields = self._fields()
        results = []
        for resource in found:
            results.append(
                self._result(resource, fields, counts.get(resource.internal_id), sop_classes)
            )
        return results

    def _fields(self) -> list[_Field]:
        level = self._query.level
        fields = [*DEFAULT_FIELDS[level], *self._query.filters, *self._query.include]
        for ancestor in (Level.STUDY, Level.SERIES):
            if ancestor < level:  # as Orthanc: the parents' attributes, without their counts
                fields += [t for t in DEFAULT_FIELDS[ancestor] if t not in _OWN_ATTRIBUTES]
        if self._query.include_all:
            from obelisk.core.tags import MAIN_TAGS

            for tag_level in Level:
                if tag_level <= level:
                    fields += [tag for tag, _ in MAIN_TAGS[tag_level]]
        return [_Field.of(tag) for tag in sorted(set(fields))]

    def _load_ancestors(self, found: Sequence[Resource]) -> None:
        pending = {r.parent_internal_id for r in found if r.level > Level.STUDY}
        while pending:
            ids = [i for i in pending if i is not None and i not in self._ancestors]
            parents = self._services.index.get_by_internal_ids(ids, children=False)
            self._ancestors.update({p.internal_id: p for p in parents})
            pending = {p.parent_internal_id for p in parents if p.level > Level.STUDY}

    def _chain(self, resource: Resource) -> dict[Level, Resource]:
        chain = {resource.level: resource}
        current = resource
        while current.level > Level.STUDY and current.parent_internal_id in self._ancestors:
            current = self._ancestors[current.parent_internal_id]
            chain[current.level] = current
        return chain

    def _result(
        self,
        resource: Resource,
        fields: list[_Field],
        counts: RelatedCounts | None,
        sop_classes: dict[int, str],
    ) -> JsonObject:
        chain = self._chain(resource)
        result: JsonObject = {tag_key(SPECIFIC_CHARACTER_SET): attribute("CS", ["ISO_IR 192"])}
        from_files: list[int] = []
        for field in fields:
            if field.computed:
                computed = self._computed(field.tag, resource, chain, counts, sop_classes)
                if computed is not None:
                    result[field.key] = computed
                    continue
            if field.level is None or field.level > resource.level:
                from_files.append(field.tag)
                continue
            owner = chain.get(max(field.level, Level.STUDY))
            if owner is None:
                continue
            tags = owner.patient_tags or {} if field.level is Level.PATIENT else owner.main_tags
            text = tags.get(field.keyword)
            if text is not None:
                result[field.key] = from_text(field.tag, text, field.vr)
        if from_files:
            result.update(self._read_from_file(resource, from_files))
        return dict(sorted(result.items()))

    def _computed(
        self,
        tag: int,
        resource: Resource,
        chain: dict[Level, Resource],
        counts: RelatedCounts | None,
        sop_classes: dict[int, str],
    ) -> JsonObject | None:
        level = resource.level
        if tag == RETRIEVE_URL:
            return attribute("UR", [self._retrieve_url(chain)])
        if tag == INSTANCE_AVAILABILITY:
            return attribute("CS", ["ONLINE"])
        if tag == SOP_CLASS_UID and level is Level.INSTANCE:
            return from_text(tag, sop_classes.get(resource.internal_id))
        if counts is None:
            return None
        if level is Level.STUDY and tag in (MODALITIES_IN_STUDY, MODALITY):
            # Modality asked of a study (OHIF does): the series rows have it, no file needed
            return attribute("CS", list(counts.modalities))
        if level is Level.STUDY and tag == STUDY_RELATED_SERIES:
            return attribute("IS", [counts.series])
        if level is Level.STUDY and tag == STUDY_RELATED_INSTANCES:
            return attribute("IS", [counts.instances])
        if level is Level.SERIES and tag == SERIES_RELATED_INSTANCES:
            return attribute("IS", [counts.instances])
        return None

    def _retrieve_url(self, chain: dict[Level, Resource]) -> str:
        url = f"{self._base}/studies/{chain[Level.STUDY].main_tags.get('StudyInstanceUID', '')}"
        if Level.SERIES in chain:
            url += f"/series/{chain[Level.SERIES].main_tags.get('SeriesInstanceUID', '')}"
        if Level.INSTANCE in chain:
            url += f"/instances/{chain[Level.INSTANCE].main_tags.get('SOPInstanceUID', '')}"
        return url

    def _read_from_file(self, resource: Resource, tags: list[int]) -> JsonObject:
        resources = self._services.resources
        instance = (
            resource.public_id
            if resource.level is Level.INSTANCE
            else resources.any_instance(resource.level, resource.public_id)
        )
        dataset = instance_header(resources, instance)
        found: JsonObject = {}
        for tag in tags:
            element = dataset.get(tag)
            if element is not None and element.VR != "SQ":
                found[tag_key(tag)] = from_text(tag, element_text(element), str(element.VR))
        return found
