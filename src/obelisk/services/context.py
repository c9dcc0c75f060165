"""All services of one server, built from its settings over one index and one storage area."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from obelisk.config import Settings
from obelisk.core.levels import Level
from obelisk.events import EventBus
from obelisk.index.base import Index
from obelisk.jobs.engine import JobEngine
from obelisk.jobs.setup import build_engine
from obelisk.metrics import Metrics
from obelisk.services.annotations import AnnotationService
from obelisk.services.changes import ChangeLog, StabilityMonitor
from obelisk.services.find import FindService
from obelisk.services.ingest import IngestOptions, IngestService
from obelisk.services.metered_storage import MeteredStorage
from obelisk.services.metric_sources import register_metric_sources
from obelisk.services.resources import ResourceService
from obelisk.services.storage_commitment import StorageCommitmentService
from obelisk.storage.base import StorageArea

if TYPE_CHECKING:
    from obelisk.services.dicom_network import DicomNetwork


@dataclass
class Services:
    settings: Settings
    index: Index
    storage: StorageArea
    bus: EventBus
    ingest: IngestService
    resources: ResourceService
    find: FindService
    annotations: AnnotationService
    changes: ChangeLog
    stability: StabilityMonitor
    jobs: JobEngine
    metrics: Metrics
    #: DICOM networking (modalities, queries, SCU jobs); its client is plugged in by server.py.
    network: DicomNetwork | None = None
    #: Storage commitment SCU and SCP (reports in memory); its client is plugged in by server.py.
    storage_commitment: StorageCommitmentService | None = None

    def start(self) -> None:
        self.stability.start()
        self.jobs.start(load_saved=bool(self.settings.obelisk["LoadSavedJobs"]))

    def close(self) -> None:
        self.jobs.close()
        self.stability.stop()
        self.ingest.close()
        self.storage.close()
        self.bus.close()
        self.index.close()


def build_services(
    settings: Settings, index: Index, storage: StorageArea, *, metrics: Metrics | None = None
) -> Services:
    metrics = metrics or Metrics(enabled=bool(settings["MetricsEnabled"]))
    storage = MeteredStorage(storage, metrics)
    bus = EventBus()
    resources = ResourceService(
        index,
        storage,
        bus,
        write_to_filesystem=bool(settings["RestApiWriteToFileSystemEnabled"]),
    )
    compress = bool(settings["StorageCompression"])
    ingest = IngestService(
        index,
        storage,
        bus,
        IngestOptions(
            overwrite=bool(settings["OverwriteInstances"]),
            compress=compress,
            max_batch=int(settings.obelisk["GroupCommitMaxBatch"]),
            max_storage_size_mb=int(settings["MaximumStorageSize"]),
            max_patient_count=int(settings["MaximumPatientCount"]),
        ),
        delete_patient=lambda public_id: _discard(resources.delete(Level.PATIENT, public_id)),
        metrics=metrics,
    )
    services = Services(
        settings=settings,
        index=index,
        storage=storage,
        bus=bus,
        ingest=ingest,
        resources=resources,
        find=FindService(index, resources, max_results=int(settings["LimitFindResults"])),
        annotations=AnnotationService(
            index,
            storage,
            resources,
            bus,
            user_metadata=settings["UserMetadata"],
            user_content_types=settings["UserContentType"],
            compress=compress,
            check_revisions=bool(settings["CheckRevisions"]),
        ),
        changes=ChangeLog(index),
        stability=StabilityMonitor(index, bus, int(settings["StableAge"])),
        jobs=build_engine(settings, _index_location(index)),
        metrics=metrics,
    )
    register_metric_sources(metrics, index, services.jobs, ingest)
    try:
        from obelisk.services.job_kinds import register_job_kinds
    except ImportError:  # the concrete job kinds are not written yet
        pass
    else:
        register_job_kinds(services.jobs, services)
    from obelisk.services.dicom_network import DicomNetwork

    # The DICOM client (pynetdicom) is an adapter: server.py plugs it in before start().
    services.network = DicomNetwork(services, client=None)
    services.network.register_job_kinds(services.jobs)
    services.storage_commitment = StorageCommitmentService(
        resources,
        services.network.registry,
        local_aet=str(settings["DicomAet"]),
        check_modality_host=bool(settings["DicomCheckModalityHost"]),
        max_reports=int(settings["StorageCommitmentReportsSize"]),
        submit=services.jobs.submit,
    )
    return services


def _index_location(index: Index) -> str:
    """Where the job store lives: the index's PostgreSQL URL or SQLite file (":memory:" else)."""
    url = getattr(index, "url", None)
    if isinstance(url, str):
        return url
    path = getattr(index, "path", None)
    return path if isinstance(path, str) and "mode=memory" not in path else ":memory:"


def _discard(_: object) -> None:
    return None
