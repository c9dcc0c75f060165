"""Builds the jobs engine a server's settings ask for (store, folders, limits, built-in kinds)."""

from __future__ import annotations

import socket
from pathlib import Path

from obelisk.config import Settings
from obelisk.jobs.engine import JobEngine
from obelisk.jobs.kinds import noop
from obelisk.jobs.store import MemoryJobStore, open_job_store


def build_engine(settings: Settings, index_location: str) -> JobEngine:
    """``index_location``: the index's SQLite file or PostgreSQL URL (``:memory:`` → memory).

    ``SaveJobs: false`` keeps the jobs in memory only; outputs go to ``Obelisk.JobsDirectory``
    (default ``<StorageDirectory>/jobs``), or to a temporary folder for in-memory indexes.
    """
    in_memory = not index_location or "memory" in index_location
    persistent = bool(settings["SaveJobs"]) and not in_memory
    store = open_job_store(index_location) if persistent else MemoryJobStore()
    folder = str(settings.obelisk["JobsDirectory"])
    output_root: Path | None
    if folder:
        output_root = settings._resolve(folder)
    else:
        output_root = None if in_memory else settings.storage_directory / "jobs"
    node = str(settings.obelisk["JobsNode"]) or f"{socket.gethostname()}:{settings['HttpPort']}"
    engine = JobEngine(
        store,
        concurrent_jobs=int(settings["ConcurrentJobs"]),
        history_size=int(settings["JobsHistorySize"]),
        media_archive_size=int(settings["MediaArchiveSize"]),
        output_root=output_root,
        node=node,
        lease_seconds=float(settings.obelisk["JobLeaseSeconds"]),
    )
    # A diagnostic kind on purpose, not a test fixture: see docs/jobs.md, "The built-in Noop kind".
    engine.register_kind(noop.TYPE_NAME, noop.rebuild, noop.validate)
    return engine
