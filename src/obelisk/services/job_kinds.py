"""Registers the job kinds of this package with the engine: factories (rebuild from a snapshot)
and validators (build from a queue request such as an item of ``POST /queue/batch``).

Queue requests::

    {"Type": "Archive", "Resources": [ids], "Transcode": uid, "Compression": "deflate"}
    {"Type": "Media", "Resources": [ids], "Extended": true}
    {"Type": "ResourceModification", "Level": "Study", "Resource": id, "Anonymize": false,
     ...the body of /modify or /anonymize...}
    {"Type": "ResourceModification", "Resources": [ids], "Anonymize": false,
     ...the body of /tools/bulk-modify or /tools/bulk-anonymize...}
    {"Type": "SplitStudy", "Study": id, ...the body of /split...}
    {"Type": "MergeStudy", "Study": id, ...the body of /merge...}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from obelisk.core.levels import Level
from obelisk.errors import BadRequest, ErrorCode, ObeliskError
from obelisk.jobs.model import Job
from obelisk.services.archives import ArchiveJob, ArchiveOptions, plan_archive
from obelisk.services.modification_jobs import (
    MergeStudyJob,
    ModificationService,
    OriginInfo,
    ResourceModificationJob,
    SplitStudyJob,
)
from obelisk.services.storage_commitment import SCP_TYPE

if TYPE_CHECKING:
    from obelisk.jobs.engine import JobEngine
    from obelisk.services.context import Services


def archive_options(body: dict[str, Any], *, media: bool) -> ArchiveOptions:
    transcode = body.get("Transcode")
    if transcode is not None and not isinstance(transcode, str):
        raise BadRequest('"Transcode" must be a transfer syntax UID')
    compression = body.get("Compression", "none")
    if compression not in ("none", "stored", "deflate"):
        raise BadRequest('"Compression" must be "none" (stored) or "deflate"')
    extended = body.get("Extended", False)
    if not isinstance(extended, bool):
        raise BadRequest('"Extended" must be a Boolean')
    return ArchiveOptions(
        media=media,
        extended=extended,
        deflate=compression == "deflate",
        transcode=transcode or None,
    )


def _string(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f'Field "{key}" is required and must be a string')
    return value


def register_job_kinds(engine: JobEngine, services: Services) -> None:
    modifications = ModificationService(services)

    def archive_from_request(request: dict[str, Any]) -> Job:
        resources = request.get("Resources")
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise BadRequest('"Resources" must be a list of Orthanc identifiers')
        media = request.get("Type") == "Media"
        options = archive_options(request, media=media)
        return ArchiveJob.create(services, plan_archive(services, resources, media=media), options)

    def modification_from_request(request: dict[str, Any]) -> Job:
        anonymize = bool(request.get("Anonymize", False))
        if "Resources" in request:  # as /tools/bulk-modify or /tools/bulk-anonymize
            return modifications.bulk_job(request, anonymize=anonymize, origin=OriginInfo())
        try:
            level = Level.parse(_string(request, "Level"))
        except KeyError as exc:
            raise BadRequest("Unknown level") from exc
        return modifications.modification_job(
            level,
            _string(request, "Resource"),
            request,
            anonymize=anonymize,
            origin=OriginInfo(kind="RestApi"),
        )

    def split_from_request(request: dict[str, Any]) -> Job:
        return modifications.split_job(_string(request, "Study"), request, OriginInfo())

    def merge_from_request(request: dict[str, Any]) -> Job:
        return modifications.merge_job(_string(request, "Study"), request, OriginInfo())

    engine.register_kind("Archive", lambda s: ArchiveJob(services, s), archive_from_request)
    engine.register_kind("Media", lambda s: ArchiveJob(services, s), archive_from_request)
    engine.register_kind(
        "ResourceModification",
        lambda s: ResourceModificationJob(services, s),
        modification_from_request,
    )

    def commitment_scp_job(snapshot: dict[str, Any]) -> Job:
        # The service is built after the kinds are registered; jobs are rebuilt after start().
        if services.storage_commitment is None:
            raise ObeliskError("Storage commitment is not set up", code=ErrorCode.NotImplemented)
        return services.storage_commitment.scp_job(snapshot)

    engine.register_kind("SplitStudy", lambda s: SplitStudyJob(services, s), split_from_request)
    engine.register_kind("MergeStudy", lambda s: MergeStudyJob(services, s), merge_from_request)
    # Submitted by the DICOM server when a modality sends an N-ACTION, never by a request.
    engine.register_kind(SCP_TYPE, commitment_scp_job)
