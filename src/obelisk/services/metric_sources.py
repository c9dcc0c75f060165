"""The values ``/tools/metrics-prometheus`` reads at scrape time, as Orthanc does."""

from __future__ import annotations

from collections.abc import Mapping

from obelisk.index.base import Index
from obelisk.jobs.engine import JobEngine
from obelisk.jobs.info import JobState
from obelisk.metrics import Metrics
from obelisk.services.ingest import IngestService

_MEGABYTE = 1024 * 1024


def register_metric_sources(
    metrics: Metrics, index: Index, jobs: JobEngine, ingest: IngestService
) -> None:
    def database() -> Mapping[str, float]:
        totals = index.totals()
        return {
            "orthanc_count_patients": totals.patients,
            "orthanc_count_studies": totals.studies,
            "orthanc_count_series": totals.series,
            "orthanc_count_instances": totals.instances,
            "orthanc_disk_size_mb": totals.compressed_size / _MEGABYTE,
            "orthanc_uncompressed_size_mb": totals.uncompressed_size / _MEGABYTE,
            "orthanc_last_change": index.last_change_seq(),
            # Orthanc 1.10.1 reports its parsed-DICOM cache; Obelisk keeps none.
            "orthanc_dicom_cache_count": 0,
            "orthanc_dicom_cache_size": 0,
        }

    def job_counts() -> Mapping[str, float]:
        counts = jobs.status().counts
        # Orthanc counts a job waiting to be retried as pending.
        pending = counts[JobState.PENDING] + counts[JobState.RETRY]
        return {
            "orthanc_jobs_pending": pending,
            "orthanc_jobs_running": counts[JobState.RUNNING],
            "orthanc_jobs_success": counts[JobState.SUCCESS],
            "orthanc_jobs_failed": counts[JobState.FAILURE],
            "orthanc_jobs_completed": counts[JobState.SUCCESS] + counts[JobState.FAILURE],
            "obelisk_jobs_paused": counts[JobState.PAUSED],
        }

    def group_commit() -> Mapping[str, float]:
        return {
            "obelisk_group_commit_transactions": ingest.committer.batches,
            "obelisk_group_commit_instances": ingest.committer.committed,
        }

    for source in (database, job_counts, group_commit):
        metrics.add_source(source)
