"""The resource tree: look-ups, navigation, listing, deletion and statistics."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pydicom

from obelisk.core.changes import ChangeType, ContentType, MetadataType
from obelisk.core.levels import Level
from obelisk.core.series import series_status
from obelisk.core.slices import Slice, normal_of, order_slices, parse_vector
from obelisk.core.timestamps import now_iso
from obelisk.errors import (
    BadFileFormat,
    BadRequest,
    ErrorCode,
    Forbidden,
    ObeliskError,
    UnknownResource,
)
from obelisk.events import EventBus, ResourceChanged
from obelisk.index.base import Attachment, DeleteOutcome, Index, InstanceFile, Resource
from obelisk.services.files import AttachmentReader
from obelisk.storage.base import StorageArea

_Node = TypeVar("_Node")


@dataclass(frozen=True, slots=True)
class ResourceView:
    """A resource with what its JSON rendering needs beyond its index row."""

    resource: Resource
    #: Instances: the DICOM attachment and IndexInSeries.
    dicom: Attachment | None = None
    index_in_series: int | None = None
    #: Series: ExpectedNumberOfInstances and the completeness status.
    expected_instances: int | None = None
    status: str = "Unknown"


@dataclass(frozen=True, slots=True)
class ResourceStatistics:
    level: Level
    counts: dict[Level, int]
    disk_size: int
    uncompressed_size: int
    dicom_disk_size: int
    dicom_uncompressed_size: int


class ResourceService:
    def __init__(
        self,
        index: Index,
        storage: StorageArea,
        bus: EventBus,
        *,
        write_to_filesystem: bool = False,
    ) -> None:
        """``write_to_filesystem``: Orthanc's ``RestApiWriteToFileSystemEnabled`` (clients may
        have files written on the server's disk)."""
        self.index = index
        self._write_to_filesystem = write_to_filesystem
        self.reader = AttachmentReader(storage)
        self._storage = storage
        self._bus = bus

    # -- look-ups ----------------------------------------------------------------------------
    def get(self, level: Level, public_id: str) -> Resource:
        resource = self.index.lookup(public_id, level)
        if resource is None:
            raise UnknownResource(f"Unknown {level.title.lower()}: {public_id}")
        return resource

    def get_any(self, public_id: str) -> Resource:
        resource = self.index.lookup(public_id)
        if resource is None:
            raise UnknownResource(f"Unknown resource: {public_id}")
        return resource

    def view(self, level: Level, public_id: str) -> ResourceView:
        return self.views([self.get(level, public_id)])[0]

    def views(self, resources: Sequence[Resource]) -> list[ResourceView]:
        """Adds the per-level extras with one query per kind, not one per resource."""
        instance_ids = [r.internal_id for r in resources if r.level is Level.INSTANCE]
        series_ids = [r.internal_id for r in resources if r.level is Level.SERIES]
        dicom = self.index.attachments_of_many(instance_ids, ContentType.Dicom)
        positions = self.index.metadata_of_many(instance_ids, MetadataType.IndexInSeries)
        expected = self.index.metadata_of_many(series_ids, MetadataType.ExpectedNumberOfInstances)
        result = []
        for resource in resources:
            rid = resource.internal_id
            if resource.level is Level.INSTANCE:
                position = positions.get(rid)
                result.append(
                    ResourceView(
                        resource,
                        dicom=dicom.get(rid),
                        index_in_series=int(position) if position else None,
                    )
                )
            elif resource.level is Level.SERIES:
                count = int(expected[rid]) if rid in expected else None
                status = series_status(count, self._indexes_in_series(rid)) if count else "Unknown"
                result.append(ResourceView(resource, expected_instances=count, status=status))
            else:
                result.append(ResourceView(resource))
        return result

    def ordered_slices(self, public_id: str) -> tuple[list[Slice], bool]:
        """The series' instances in spatial order, and whether they form a volume."""
        series = self.get(Level.SERIES, public_id)
        files = self.index.instance_files(series.internal_id)
        instances = self.index.get_by_internal_ids([f.internal_id for f in files], children=False)
        indexes = self.index.metadata_of_many(
            [f.internal_id for f in files], MetadataType.IndexInSeries
        )
        slices = []
        for instance in instances:
            tags = instance.main_tags
            position = parse_vector(tags.get("ImagePositionPatient"), 3)
            frames = tags.get("NumberOfFrames", "1").strip()
            index = indexes.get(instance.internal_id)
            slices.append(
                Slice(
                    instance.public_id,
                    (position[0], position[1], position[2]) if position else None,
                    int(index) if index and index.isdigit() else None,
                    int(frames) if frames.isdigit() else 1,
                )
            )
        ordered = order_slices(slices, normal_of(series.main_tags.get("ImageOrientationPatient")))
        if ordered is None:
            raise ObeliskError(
                f"Cannot order the slices of series {public_id}", code=ErrorCode.CannotOrderSlices
            )
        return ordered

    def _indexes_in_series(self, series_internal_id: int) -> list[int | None]:
        instance_ids = [f.internal_id for f in self.index.instance_files(series_internal_id)]
        positions = self.index.metadata_of_many(instance_ids, MetadataType.IndexInSeries)
        return [int(positions[i]) if i in positions else None for i in instance_ids]

    def list_ids(self, level: Level, *, since: int, limit: int | None) -> list[str]:
        return self.index.list_public_ids(level, since=since, limit=limit)

    def list_views(self, level: Level, *, since: int, limit: int | None) -> list[ResourceView]:
        ids = self.index.list_internal_ids(level, since=since, limit=limit)
        return self.views(self.index.get_by_internal_ids(ids, children=True))

    def views_of_internal(self, internal_ids: Sequence[int]) -> list[ResourceView]:
        return self.views(self.index.get_by_internal_ids(internal_ids, children=True))

    # -- navigation --------------------------------------------------------------------------
    def descendants(self, level: Level, public_id: str, target: Level) -> list[ResourceView]:
        """``/studies/{id}/instances`` and friends: every resource of ``target`` below."""
        root = self.get(level, public_id)
        if target is Level.INSTANCE:
            files = self.index.instance_files(root.internal_id)
            ordered = orthanc_descendant_order(
                [root.internal_id],
                _children_by_parent(files, root.internal_id if level is Level.PATIENT else None),
                target - level,
            )
            return self.views_of_internal(ordered)
        resources = orthanc_descendant_order(
            [root], lambda resource: [self.get_any(c) for c in resource.children], target - level
        )
        return self.views(resources)

    def ancestor(self, level: Level, public_id: str, target: Level) -> ResourceView:
        """``/instances/{id}/study`` and friends."""
        resource = self.get(level, public_id)
        while resource.level > target:
            assert resource.parent_public_id is not None
            resource = self.get_any(resource.parent_public_id)
        return self.views([resource])[0]

    def instances_of(self, level: Level, public_id: str) -> list[Resource]:
        files = self.index.instance_files(self.get(level, public_id).internal_id)
        return self.index.get_by_internal_ids([f.internal_id for f in files], children=False)

    # -- DICOM content -----------------------------------------------------------------------
    def dicom_attachment(self, public_id: str) -> Attachment:
        instance = self.get(Level.INSTANCE, public_id)
        found = self.index.attachments_of_many([instance.internal_id], ContentType.Dicom)
        if instance.internal_id not in found:
            raise UnknownResource(f"Instance {public_id} has no DICOM file")
        return found[instance.internal_id]

    def dicom_bytes(self, public_id: str) -> bytes:
        return self.reader.read(self.dicom_attachment(public_id))

    def export_to_filesystem(self, public_id: str, path: str) -> None:
        """Writes the instance's DICOM file at ``path`` on the server's file system (Orthanc's
        ``POST /instances/{id}/export``), only when the configuration allows it."""
        if not self._write_to_filesystem:
            raise Forbidden(
                "Writing to the file system through the REST API is disabled",
                details='Set "RestApiWriteToFileSystemEnabled" to true to allow it',
            )
        if not path.strip():
            raise BadRequest("The body must be the path of the file to write")
        data = self.dicom_bytes(public_id)
        try:
            with open(path, "wb") as target:
                target.write(data)
        except OSError as exc:
            raise ObeliskError(
                f"Cannot write {path}", code=ErrorCode.CannotWriteFile, details=str(exc)
            ) from exc

    def dataset(self, public_id: str, *, stop_before_pixels: bool = False) -> pydicom.Dataset:
        data = self.dicom_bytes(public_id)
        try:
            return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=stop_before_pixels)
        except Exception as exc:
            raise BadFileFormat(f"Cannot parse the stored file of {public_id}") from exc

    def any_instance(self, level: Level, public_id: str) -> str:
        """One instance below a resource (Orthanc reads patient/study modules from it)."""
        files = self.index.instance_files(self.get(level, public_id).internal_id)
        if not files:
            raise UnknownResource(f"No instance below {public_id}")
        return files[0].public_id

    # -- deletion and statistics -------------------------------------------------------------
    def delete(self, level: Level, public_id: str) -> DeleteOutcome:
        resource = self.get(level, public_id)
        now = now_iso()
        with self.index.write() as writer:
            outcome = writer.delete_resource(resource.internal_id, now=now)
        for uuid in outcome.removed_uuids:
            self._storage.remove(uuid)
        for deleted_level, deleted_id in outcome.deleted:
            self._bus.publish(ResourceChanged(ChangeType.Deleted, deleted_level, deleted_id, now))
        return outcome

    def statistics(self, level: Level, public_id: str) -> ResourceStatistics:
        resource = self.get(level, public_id)
        counts, disk, uncompressed = self.index.subtree_totals(resource.internal_id)
        dicom = self.index.instance_files(resource.internal_id)
        return ResourceStatistics(
            level=level,
            counts=counts,
            disk_size=disk,
            uncompressed_size=uncompressed,
            dicom_disk_size=sum(f.attachment.compressed_size for f in dicom),
            dicom_uncompressed_size=sum(f.attachment.uncompressed_size for f in dicom),
        )

    def lookup(self, value: str) -> list[Resource]:
        return self.index.lookup_identifier(value.strip())

    def set_protected(self, public_id: str, protected: bool) -> None:
        resource = self.get(Level.PATIENT, public_id)
        with self.index.write() as writer:
            writer.set_protected(resource.internal_id, protected)

    def shared_tags(self, level: Level, public_id: str) -> dict[str, Any]:
        """Tags with the same value in every instance below a resource (full JSON form)."""
        from obelisk.core.dicom_json import full_tags

        shared: dict[str, Any] | None = None
        for instance in self.index.instance_files(self.get(level, public_id).internal_id):
            tags = full_tags(self.dataset(instance.public_id, stop_before_pixels=True))
            if shared is None:
                shared = tags
            else:
                shared = {k: v for k, v in shared.items() if tags.get(k) == v}
        return shared or {}


def orthanc_descendant_order(
    roots: list[_Node], children_of: Callable[[_Node], list[_Node]], depth: int
) -> list[_Node]:
    """Descendants ``depth`` levels down, in the order Orthanc 1.10.1 lists them.

    Orthanc goes down level by level and puts each parent's children *before* those of the
    parents already seen (``std::list::splice`` at the front), so blocks come in reverse order
    while each block keeps its creation order. Clients compare these lists, so we keep it.
    """
    current = roots
    for _ in range(depth):
        following: list[_Node] = []
        for node in current:
            following = children_of(node) + following
        current = following
    return current


def _children_by_parent(
    files: Sequence[InstanceFile], patient_internal_id: int | None
) -> Callable[[int], list[int]]:
    """The tree above ``files`` (patient → study → series → instance ids), in creation order."""
    children: dict[int, list[int]] = {}

    def add(parent: int, child: int) -> None:
        siblings = children.setdefault(parent, [])
        if not siblings or siblings[-1] != child:
            siblings.append(child)

    for file in files:
        if patient_internal_id is not None:
            add(patient_internal_id, file.study_internal_id)
        add(file.study_internal_id, file.series_internal_id)
        add(file.series_internal_id, file.internal_id)
    return lambda node: list(children.get(node, []))
