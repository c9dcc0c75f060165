"""Modification, anonymization, split and merge as jobs (Orthanc's ``ResourceModificationJob``,
``SplitStudyJob``, ``MergeStudyJob``), and the service that builds them from REST requests.

The jobs are step machines over a list of instance IDs (Orthanc's ``SetOfInstancesJob`` +
``CleaningInstancesJob``): each step stores a few modified copies through the ingest service; then,
unless ``KeepSource``, trailing steps delete the sources — only once a snapshot saying that every
copy is stored has been saved, so that a resumed job never goes back to a source already deleted.
Their snapshot is the request, the seed of the new UIDs, the position and the outputs found so
far: a job resumed after a crash redoes at most the instances of its last unsaved step, which
produce the same UIDs again (storing them again is harmless).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from obelisk.core.changes import MetadataType
from obelisk.core.identifiers import ResourceIds
from obelisk.core.levels import Level
from obelisk.core.tags import format_tag, parse_tag
from obelisk.errors import BadFileFormat, BadRequest, ErrorCode, ObeliskError
from obelisk.jobs.model import JobContext, JobOutput, StepResult, StopReason
from obelisk.services.dicom_values import (
    PATIENT_ID,
    PATIENT_MODULE,
    SERIES_UID,
    STUDY_MODULE,
    STUDY_UID,
    PrivateDictionary,
    build_element,
    encode_dataset,
    read_dataset,
)
from obelisk.services.ingest import Origin, StoreStatus
from obelisk.services.modification import (
    Modification,
    bool_option,
    derived_uid,
    modify_bytes,
    parse_anonymize_request,
    parse_modify_request,
    parse_replacements,
    parse_tag_list,
)

if TYPE_CHECKING:
    from obelisk.services.context import Services


# -- the service ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OriginInfo:
    """The origin recorded on new instances (Orthanc: the REST call that created the job)."""

    kind: str = "RestApi"
    remote_ip: str = ""
    http_username: str = ""

    def to_origin(self) -> Origin:
        return Origin(kind=self.kind, remote_ip=self.remote_ip, http_username=self.http_username)

    def to_json(self) -> dict[str, str]:
        return {"Kind": self.kind, "RemoteIp": self.remote_ip, "HttpUsername": self.http_username}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OriginInfo:
        return cls(
            data.get("Kind", "RestApi"), data.get("RemoteIp", ""), data.get("HttpUsername", "")
        )


class ModificationService:
    """Builds modification/split/merge jobs and modifies single instances."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.dictionary = PrivateDictionary.from_settings(services.settings["Dictionary"] or {})
        self._sequence_lock = threading.Lock()

    # -- single instances (no storage) ---------------------------------------------------------
    def modify_instance(self, public_id: str, body: dict[str, Any], *, anonymize: bool) -> bytes:
        data = self.services.resources.dicom_bytes(public_id)
        if anonymize:
            modification = parse_anonymize_request(body, self.next_patient_name(), self.dictionary)
        else:
            modification = parse_modify_request(body, Level.INSTANCE, self.dictionary)
        return modify_bytes(data, modification, self.dictionary)

    def next_patient_name(self) -> str:
        """``Anonymized<n>`` with a server-wide counter (global property, as Orthanc)."""
        index = self.services.index
        with self._sequence_lock:
            current = int(index.get_global("AnonymizationSequence") or "0") + 1
            with index.write() as writer:
                writer.set_global("AnonymizationSequence", str(current))
        return f"Anonymized{current}"

    # -- jobs --------------------------------------------------------------------------------
    def modification_job(
        self, level: Level, public_id: str, body: dict[str, Any], *,
        anonymize: bool, origin: OriginInfo,
    ) -> ResourceModificationJob:  # fmt: skip
        self.services.resources.get(level, public_id)
        if anonymize:
            modification = parse_anonymize_request(body, self.next_patient_name(), self.dictionary)
        else:
            modification = parse_modify_request(body, level, self.dictionary)
        state = {
            **_common_state(body, keep_source_default=True),
            "Modification": modification.to_json(),
            "Level": level.title,
            "Resource": public_id,
            "Instances": self._instances(level, public_id),
            "Origin": origin.to_json(),
        }
        return ResourceModificationJob(self.services, state)

    def bulk_job(
        self, body: dict[str, Any], *, anonymize: bool, origin: OriginInfo
    ) -> ResourceModificationJob:
        """``/tools/bulk-modify`` and ``/tools/bulk-anonymize``: one job over every instance of
        ``Resources`` (of any levels). Anonymization works at patient level; a modification at
        ``Level``, or else at the level of the highest identifier it replaces (Orthanc 1.9.7+)."""
        values = body.get("Resources")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadFileFormat("List of strings expected in field: Resources")
        instances: list[str] = []
        for value in values:
            instances.extend(self._instances(self.services.resources.get_any(value).level, value))
        if anonymize:
            level = Level.PATIENT
            modification = parse_anonymize_request(body, self.next_patient_name(), self.dictionary)
        else:
            level = self._bulk_level(body)
            modification = parse_modify_request(body, level, self.dictionary)
        state = {
            **_common_state(body, keep_source_default=True),
            "Modification": modification.to_json(),
            "Level": level.title,
            "Bulk": True,
            "Instances": list(dict.fromkeys(instances)),
            "Origin": origin.to_json(),
        }
        return ResourceModificationJob(self.services, state)

    def _bulk_level(self, body: dict[str, Any]) -> Level:
        if "Level" in body:
            try:
                return Level.parse(str(body["Level"]))
            except KeyError as exc:
                raise BadRequest(f"Unknown resource level: {body['Level']}") from exc
        replaced = {p.tag for p, _ in parse_replacements(body, True, self.dictionary)}
        for tag, level in ((PATIENT_ID, Level.PATIENT), (STUDY_UID, Level.STUDY),
                           (SERIES_UID, Level.SERIES)):  # fmt: skip
            if tag in replaced:
                return level
        return Level.INSTANCE

    def split_job(self, study_id: str, body: dict[str, Any], origin: OriginInfo) -> SplitStudyJob:
        study = self.services.resources.get(Level.STUDY, study_id)
        instances: list[str] = []
        for key, level in (("Series", Level.SERIES), ("Instances", Level.INSTANCE)):
            values = body.get(key, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise BadRequest(f'"{key}" must be a list of Orthanc identifiers')
            for value in values:
                resource = self.services.resources.get(level, value)
                if self._study_of(resource.level, resource.public_id) != study_id:
                    raise BadRequest(f"{level.title} {value} does not belong to study {study_id}")
                instances.extend(self._instances(level, value))
        if not instances:
            raise BadRequest("No series nor instance to split")
        replaced = parse_replacements(body, True, self.dictionary)
        removed = parse_tag_list(body, "Remove", True, "removed", self.dictionary)
        allowed = (PATIENT_MODULE | STUDY_MODULE) - {PATIENT_ID, STUDY_UID}
        for path in [*(p for p, _ in replaced), *removed]:
            if not path.is_plain or path.tag not in allowed:
                raise BadRequest(
                    f"Tag {path.format()} is not part of the patient or study modules, or is an "
                    "identifier: it cannot be changed by a split"
                )
        replacements = {p.tag: v for p, v in replaced}
        removals = [p.tag for p in removed]
        seed = secrets.token_hex(16)
        target_uid = derived_uid(seed, "Study", study.main_tags.get("StudyInstanceUID", ""))
        patient_id = (study.patient_tags or {}).get("PatientID", "")
        state = {
            **_common_state(body, keep_source_default=False),
            "Seed": seed,
            "TargetStudyUID": target_uid,
            "TargetStudy": ResourceIds.compute(patient_id, target_uid, "x", "x").study,
            "Replacements": {format_tag(t): v for t, v in replacements.items()},
            "Removals": [format_tag(t) for t in removals],
            "Instances": list(dict.fromkeys(instances)),
            "Origin": origin.to_json(),
        }
        return SplitStudyJob(self.services, state)

    def merge_job(self, study_id: str, body: dict[str, Any], origin: OriginInfo) -> MergeStudyJob:
        self.services.resources.get(Level.STUDY, study_id)
        values = body.get("Resources")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadRequest('"Resources" must be a list of Orthanc identifiers')
        instances: list[str] = []
        for value in values:
            resource = self.services.resources.get_any(value)
            if resource.level is Level.PATIENT:
                raise BadRequest("Patients cannot be merged into a study")
            if self._study_of(resource.level, value) == study_id:
                raise BadRequest(f"Resource {value} already belongs to study {study_id}")
            instances.extend(self._instances(resource.level, value))
        target = self.services.resources.dataset(
            self.services.resources.any_instance(Level.STUDY, study_id), stop_before_pixels=True
        )
        module_tags = {
            f"{int(e.tag):08X}": e.to_json_dict(None, 1 << 30)
            for e in target
            if int(e.tag) in (PATIENT_MODULE | STUDY_MODULE)
        }
        state = {
            **_common_state(body, keep_source_default=False),
            "Seed": secrets.token_hex(16),
            "TargetStudy": study_id,
            "TargetTags": module_tags,
            "Instances": list(dict.fromkeys(instances)),
            "Origin": origin.to_json(),
        }
        return MergeStudyJob(self.services, state)

    def _instances(self, level: Level, public_id: str) -> list[str]:
        return [r.public_id for r in self.services.resources.instances_of(level, public_id)]

    def _study_of(self, level: Level, public_id: str) -> str | None:
        if level is Level.PATIENT:
            return None
        if level is Level.STUDY:
            return public_id
        return self.services.resources.ancestor(level, public_id, Level.STUDY).resource.public_id


def _common_state(body: dict[str, Any], *, keep_source_default: bool) -> dict[str, Any]:
    return {
        "Description": "REST API",
        "Permissive": bool_option(body, "Permissive", False),
        "KeepSource": bool_option(body, "KeepSource", keep_source_default),
        "Position": 0,
        "Failed": [],
        "Done": False,
    }


def set_origin_metadata(
    services: Services, new_ids: ResourceIds, source_ids: dict[Level, str], metadata_type: int
) -> None:
    """ModifiedFrom (5) / AnonymizedFrom (6) on the new resources, from ``source_ids`` by level."""
    targets = []
    for level, source in source_ids.items():
        resource = services.index.lookup(new_ids.by_level()[level], level)
        if resource is not None and resource.public_id != source:
            targets.append((resource.internal_id, source))
    if targets:
        with services.index.write() as writer:
            for internal_id, source in targets:
                writer.set_metadata(internal_id, metadata_type, source)


# -- jobs --------------------------------------------------------------------------------------
STEP_SECONDS = 0.5


class _InstancesJob:
    """A set of instances processed a few per step, then a trailing clean-up step."""

    type_name = ""

    def __init__(self, services: Services, state: dict[str, Any]) -> None:
        self.services = services
        self.state = state
        self.origin = OriginInfo.from_json(state.get("Origin", {}))

    @property
    def instances(self) -> list[str]:
        return list(self.state["Instances"])

    def step(self, context: JobContext) -> StepResult:
        state = self.state
        instances = state["Instances"]
        deadline = time.monotonic() + STEP_SECONDS
        if state["Position"] < len(instances):
            while state["Position"] < len(instances):
                source = instances[state["Position"]]
                try:
                    self.process(source)
                except ObeliskError as exc:
                    if not state["Permissive"]:
                        return StepResult.failure(exc)
                    context.log(f"Instance {source} failed: {exc}")
                    state["Failed"].append(source)
                except Exception as exc:
                    error = ObeliskError(details=f"{type(exc).__name__}: {exc}")
                    if not state["Permissive"]:
                        return StepResult.failure(error)
                    state["Failed"].append(source)
                state["Position"] += 1
                if time.monotonic() > deadline:
                    return StepResult.cont()
            if not state["KeepSource"]:
                # Every copy is stored: that is saved before any source goes, so that a job
                # resumed during the clean-up never goes back to sources already deleted.
                return StepResult.cont()
        if not state["Done"]:
            if not state["KeepSource"] and not self.delete_sources(deadline):
                return StepResult.cont()
            state["Done"] = True
        return StepResult.success()

    def process(self, source: str) -> None:
        raise NotImplementedError

    def delete_sources(self, deadline: float) -> bool:
        """Orthanc's CleaningInstancesJob, resumable: ``Cleaned`` counts the sources done.
        True when every source is gone."""
        state = self.state
        keep = set(state.get("Created", [])) | set(state["Failed"])
        sources = state["Instances"]
        while state.get("Cleaned", 0) < len(sources):
            source = sources[state.get("Cleaned", 0)]
            if source not in keep and self.services.index.lookup(source, Level.INSTANCE):
                self.services.resources.delete(Level.INSTANCE, source)
            state["Cleaned"] = state.get("Cleaned", 0) + 1
            if time.monotonic() > deadline:
                return False
        return True

    def store(self, data: bytes) -> ResourceIds:
        result = self.services.ingest.store(data, self.origin.to_origin())
        if result.status not in (StoreStatus.Success, StoreStatus.AlreadyStored):
            raise ObeliskError(code=ErrorCode.CannotStoreInstance, details=result.status.value)
        self.state.setdefault("Created", []).append(result.ids.instance)
        return result.ids

    def store_with_new_uids(self, ds: Dataset) -> None:
        """Split and merge: new series and instance UIDs derived from the job's seed, stored."""
        seed = self.state["Seed"]
        ds.SeriesInstanceUID = derived_uid(seed, "Series", str(ds.get("SeriesInstanceUID", "")))
        ds.SOPInstanceUID = derived_uid(seed, "Instance", str(ds.get("SOPInstanceUID", "")))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        self.store(encode_dataset(ds))

    def progress(self) -> float:
        total = len(self.state["Instances"]) + 1
        done = int(self.state["Position"]) + (1 if self.state["Done"] else 0)
        return min(1.0, done / total)

    def base_content(self) -> dict[str, Any]:
        return {
            "Description": self.state["Description"],
            "InstancesCount": len(self.state["Instances"]),
            "FailedInstancesCount": len(self.state["Failed"]),
        }

    def content(self) -> dict[str, Any]:
        return self.base_content()

    def serialize(self) -> dict[str, Any]:
        return {"Type": self.type_name, **self.state}

    def reset(self) -> None:
        self.state["Position"] = 0
        self.state["Failed"] = []
        self.state["Done"] = False
        self.state.pop("Created", None)
        self.state.pop("Cleaned", None)

    def stop(self, reason: StopReason) -> None:
        return None

    def outputs(self) -> dict[str, JobOutput]:
        return {}

    def _dataset(self, source: str) -> Dataset:
        return read_dataset(self.services.resources.dicom_bytes(source))


class ResourceModificationJob(_InstancesJob):
    type_name = "ResourceModification"

    def __init__(self, services: Services, state: dict[str, Any]) -> None:
        super().__init__(services, state)
        self.modification = Modification.from_json(state["Modification"])
        self.level = Level.parse(state["Level"])
        self.dictionary = PrivateDictionary.from_settings(services.settings["Dictionary"] or {})

    def process(self, source: str) -> None:
        resources = self.services.resources
        ds = self._dataset(source)
        self.modification.apply(ds, self.dictionary)
        new_ids = self.store(encode_dataset(ds, self.modification.transcode))
        instance = resources.get(Level.INSTANCE, source)
        sources: dict[Level, str] = {Level.INSTANCE: source}
        parent = instance.parent_public_id
        for level in (Level.SERIES, Level.STUDY, Level.PATIENT):
            if parent is None:
                break
            sources[level] = parent
            parent = resources.get(level, parent).parent_public_id
        wanted = {lv: sid for lv, sid in sources.items() if lv >= self.modification.level}
        metadata = (
            MetadataType.AnonymizedFrom
            if self.modification.is_anonymization
            else MetadataType.ModifiedFrom
        )
        set_origin_metadata(self.services, new_ids, wanted, int(metadata))
        if self.state.get("Bulk"):
            created = self.state.setdefault("Resources", {})
            for level in Level:
                new_id = new_ids.by_level()[level]
                ids = created.setdefault(level.title, [])
                if new_id not in ids:
                    ids.append(new_id)
        elif "Output" not in self.state:
            self.state["Output"] = {
                "ID": new_ids.by_level()[self.level],
                "PatientID": new_ids.patient,
            }

    def content(self) -> dict[str, Any]:
        content = self.base_content()
        content["IsAnonymization"] = self.modification.is_anonymization
        if self.modification.transcode:
            content["Transcode"] = self.modification.transcode
        if self.state.get("Bulk"):
            content["Resources"] = self._bulk_resources()
        output = self.state.get("Output")
        if output is not None and self.state["Done"]:
            content.update(
                {
                    "ID": output["ID"],
                    "Path": f"/{self.level.plural}/{output['ID']}",
                    "PatientID": output["PatientID"],
                    "Type": self.level.title,
                }
            )
        return content

    def _bulk_resources(self) -> list[dict[str, str]]:
        """Orthanc's bulk output: the new instances, series, studies, patients (sorted IDs)."""
        created = self.state.get("Resources", {})
        return [
            {"ID": new_id, "Path": f"/{level.plural}/{new_id}", "Type": level.title}
            for level in (Level.INSTANCE, Level.SERIES, Level.STUDY, Level.PATIENT)
            for new_id in sorted(created.get(level.title, []))
        ]

    def reset(self) -> None:
        super().reset()
        self.state.pop("Output", None)
        self.state.pop("Resources", None)


class SplitStudyJob(_InstancesJob):
    type_name = "SplitStudy"

    def process(self, source: str) -> None:
        state = self.state
        ds = self._dataset(source)
        for name in state["Removals"]:
            tag = parse_tag(name)
            if tag in ds:
                del ds[tag]
        for name, value in state["Replacements"].items():
            tag = parse_tag(name)
            ds[tag] = build_element(tag, value)
        ds.StudyInstanceUID = state["TargetStudyUID"]
        self.store_with_new_uids(ds)

    def content(self) -> dict[str, Any]:
        content = self.base_content()
        content["TargetStudy"] = self.state["TargetStudy"]
        content["TargetStudyUID"] = self.state["TargetStudyUID"]
        return content


class MergeStudyJob(_InstancesJob):
    type_name = "MergeStudy"

    def process(self, source: str) -> None:
        state = self.state
        ds = self._dataset(source)
        target = Dataset.from_json(dict(state["TargetTags"].items()))
        for element in list(ds):
            if int(element.tag) in (PATIENT_MODULE | STUDY_MODULE) and element.tag not in target:
                del ds[element.tag]
        for element in target:
            ds[element.tag] = element
        self.store_with_new_uids(ds)

    def content(self) -> dict[str, Any]:
        content = self.base_content()
        content["TargetStudy"] = self.state["TargetStudy"]
        return content
