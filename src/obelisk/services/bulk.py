"""Orthanc's whole-index tools: bulk deletion, bulk description and reconstruction of all.

What Orthanc 1.10.1 does, checked against it:

* ``bulk-delete`` deletes each resource whatever its level; an identifier it does not know, or
  one already gone with an ancestor deleted earlier in the same list, is skipped silently.
* ``bulk-content`` without a level describes the resources in the order given (duplicates kept,
  unknown ones skipped). With a level, each resource is replaced by its ancestor or its
  descendants of that level, and the answer is the *set* of those, sorted by identifier.
* ``reconstruct`` reads every stored file again and rewrites the main tags of all four levels
  (patients included), without logging changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from obelisk.core.levels import Level
from obelisk.errors import UnknownResource
from obelisk.index.base import Resource
from obelisk.services.annotations import AnnotationService
from obelisk.services.reconstruction import reconstruct
from obelisk.services.resources import ResourceService, ResourceView


@dataclass(frozen=True, slots=True)
class Described:
    """One resource as ``GET /{level}/{id}`` shows it, with its metadata when asked for."""

    view: ResourceView
    metadata: dict[str, str] | None


def delete_resources(resources: ResourceService, public_ids: Sequence[str]) -> list[str]:
    """Deletes each resource, of any level; returns the identifiers actually deleted."""
    deleted = []
    for public_id in public_ids:
        found = resources.index.lookup(public_id)
        if found is None:
            continue
        try:
            resources.delete(found.level, public_id)
        except UnknownResource:  # deleted meanwhile, by another request
            continue
        deleted.append(public_id)
    return deleted


def describe_resources(
    resources: ResourceService,
    annotations: AnnotationService,
    public_ids: Sequence[str],
    *,
    level: Level | None,
    with_metadata: bool,
) -> list[Described]:
    """The resources (or, with ``level``, their relatives of that level), expanded."""
    index = resources.index
    if level is None:
        found = [index.lookup(public_id) for public_id in public_ids]
    else:
        wanted = sorted(_relatives(resources, public_ids, level))
        found = [index.lookup(public_id, level) for public_id in wanted]
    views = resources.views([resource for resource in found if resource is not None])
    described = []
    for view in views:
        metadata = None
        if with_metadata:
            try:
                metadata = annotations.metadata(view.resource.level, view.resource.public_id)
            except UnknownResource:  # deleted meanwhile, by another request
                continue
        described.append(Described(view, metadata))
    return described


def _relatives(resources: ResourceService, public_ids: Sequence[str], level: Level) -> set[str]:
    """The identifiers of ``level`` above or below each known resource (itself if of ``level``)."""
    index = resources.index
    result: set[str] = set()
    for public_id in public_ids:
        resource = index.lookup(public_id)
        if resource is None:
            continue
        if resource.level > level:
            result.update(_ancestor(resources, resource, level))
        elif level is Level.INSTANCE:
            result.update(f.public_id for f in index.instance_files(resource.internal_id))
        else:
            current = [resource]
            while current and current[0].level < level:
                children = [index.lookup(c) for r in current for c in r.children]
                current = [child for child in children if child is not None]
            result.update(r.public_id for r in current)
    return result


def _ancestor(resources: ResourceService, resource: Resource, level: Level) -> list[str]:
    current: Resource | None = resource
    while current is not None and current.level > level:
        parent = current.parent_public_id
        current = resources.index.lookup(parent) if parent is not None else None
    return [current.public_id] if current is not None else []


def reconstruct_all(resources: ResourceService) -> int:
    """Reconstructs every patient (so every study below it); returns how many files were read.

    Per patient rather than per study: Orthanc rewrites the patients' own main tags too.
    """
    read = 0
    for public_id in resources.index.list_public_ids(Level.PATIENT):
        try:
            read += reconstruct(resources, Level.PATIENT, public_id)
        except UnknownResource:  # deleted meanwhile, by another request
            continue
    return read
