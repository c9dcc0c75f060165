"""Schema of the job tables, kept apart from the index migrations (same database, own version).

Each migration is a list of statements valid on both SQLite and PostgreSQL; a migration is applied
once, recorded in ``obelisk_jobs_schema``.
"""

from __future__ import annotations

MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE IF NOT EXISTS obelisk_jobs (
            id TEXT PRIMARY KEY,
            type_name TEXT NOT NULL,
            state TEXT NOT NULL,
            priority INTEGER NOT NULL,
            order_key BIGINT NOT NULL,
            creation_time DOUBLE PRECISION NOT NULL,
            last_change_time DOUBLE PRECISION NOT NULL,
            completion_seq BIGINT,
            completion_time DOUBLE PRECISION,
            runtime DOUBLE PRECISION NOT NULL DEFAULT 0,
            error_code INTEGER NOT NULL DEFAULT 0,
            error_details TEXT NOT NULL DEFAULT '',
            progress DOUBLE PRECISION NOT NULL DEFAULT 0,
            content TEXT NOT NULL,
            snapshot TEXT NOT NULL,
            outputs TEXT NOT NULL,
            request TEXT,
            lease_owner TEXT,
            lease_expiry DOUBLE PRECISION,
            retry_at DOUBLE PRECISION
        )""",
        "CREATE INDEX IF NOT EXISTS obelisk_jobs_queue "
        "ON obelisk_jobs (state, priority, order_key)",
        "CREATE INDEX IF NOT EXISTS obelisk_jobs_history ON obelisk_jobs (completion_seq)",
        """CREATE TABLE IF NOT EXISTS obelisk_job_counters (
            name TEXT PRIMARY KEY,
            value BIGINT NOT NULL
        )""",
        "INSERT INTO obelisk_job_counters (name, value) VALUES ('order', 0), ('completion', 0)",
    ],
}
