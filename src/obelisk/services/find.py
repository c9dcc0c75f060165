"""``/tools/find`` and C-FIND: constraints on main tags go to the index; others read the files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from obelisk.core.dicom_json import element_text
from obelisk.core.levels import Level
from obelisk.core.matching import Constraint, is_indexed, parse_constraint
from obelisk.core.tags import parse_tag, vr_of
from obelisk.errors import BadRequest, ErrorCode, ParameterOutOfRange
from obelisk.index.base import Index
from obelisk.services.resources import ResourceService


@dataclass(frozen=True, slots=True)
class FindRequest:
    level: Level
    query: dict[str, str] = field(default_factory=dict)
    case_sensitive: bool = False
    limit: int | None = None
    since: int = 0
    #: C-FIND's rule (Orthanc's ``CaseSensitivePN``): ``case_sensitive`` then decides for person
    #: names only, and every other string tag matches case-sensitively. ``/tools/find`` applies
    #: its ``CaseSensitive`` to every string tag.
    case_rule_for_names_only: bool = False


_MODALITIES_IN_STUDY = 0x00080061
_MODALITY = 0x00080060


class FindService:
    def __init__(self, index: Index, resources: ResourceService, *, max_results: int = 0) -> None:
        self._index = index
        self._resources = resources
        self._max_results = max_results

    def constraints(self, request: FindRequest) -> list[Constraint]:
        constraints = []
        for key, value in request.query.items():
            try:
                tag = parse_tag(key)
            except ValueError as exc:
                raise BadRequest(
                    f"Unknown DICOM tag in the query: {key}",
                    code=ErrorCode.UnknownDicomTag,
                    http_status=400,
                ) from exc
            if not isinstance(value, str):
                raise BadRequest(f"The value of {key} in the query must be a string")
            sensitive = request.case_sensitive or (
                request.case_rule_for_names_only and vr_of(tag) != "PN"
            )
            constraint = parse_constraint(tag, value, case_sensitive=sensitive)
            if constraint is not None:
                constraints.append(constraint)
        return constraints

    def find(self, request: FindRequest) -> list[int]:
        """Internal ids of the matching resources, in index order."""
        level = request.level
        constraints = self.constraints(request)
        studies_with_modality: set[int] | None = None
        if level is Level.STUDY:
            modalities = [c for c in constraints if c.tag == _MODALITIES_IN_STUDY]
            constraints = [c for c in constraints if c.tag != _MODALITIES_IN_STUDY]
            if modalities:
                studies_with_modality = self._studies_with_modality(modalities)
        indexed = [c for c in constraints if is_indexed(c, level)]
        on_files = [c for c in constraints if not is_indexed(c, level)]
        limit = request.limit
        if self._max_results and (limit is None or limit > self._max_results):
            limit = self._max_results
        if not on_files and studies_with_modality is None:
            return self._index.find(level, indexed, since=request.since, limit=limit)

        matches: list[int] = []
        skipped = 0
        candidates = self._index.find(level, indexed, since=0, limit=None)
        if studies_with_modality is not None:
            candidates = [c for c in candidates if c in studies_with_modality]
        for resource in self._index.get_by_internal_ids(candidates, children=False):
            if on_files and not self._file_matches(resource.level, resource.public_id, on_files):
                continue
            if skipped < request.since:
                skipped += 1
                continue
            matches.append(resource.internal_id)
            if limit is not None and len(matches) >= limit:
                break
        return matches

    def _studies_with_modality(self, constraints: list[Constraint]) -> set[int]:
        """``ModalitiesInStudy``: studies having a series whose Modality matches."""
        series_constraints = [
            Constraint(_MODALITY, c.kind, c.values, c.case_sensitive) for c in constraints
        ]
        series_ids = self._index.find(Level.SERIES, series_constraints, since=0, limit=None)
        return {
            series.parent_internal_id
            for series in self._index.get_by_internal_ids(series_ids, children=False)
            if series.parent_internal_id is not None
        }

    def _file_matches(self, level: Level, public_id: str, constraints: list[Constraint]) -> bool:
        instance = (
            public_id if level is Level.INSTANCE else self._resources.any_instance(level, public_id)
        )
        dataset = self._resources.dataset(instance, stop_before_pixels=True)
        for constraint in constraints:
            element = dataset.get(constraint.tag)
            value = None if element is None else element_text(element)
            if not constraint.matches(value):
                return False
        return True


def level_field(body: dict[str, Any]) -> Level:
    """The ``Level`` of a request body (``/tools/find``, ``/modalities/{m}/query``…)."""
    text = body.get("Level")
    if not isinstance(text, str):
        raise BadRequest('Field "Level" is required and must be a string')
    try:
        return Level.parse(text)
    except KeyError as exc:
        raise ParameterOutOfRange(f"Unknown resource level: {text}") from exc
