"""Runs every contract test against every back-end of the protocol it checks.

Index back-ends: SQLite in a file, SQLite in memory, and PostgreSQL on 127.0.0.1:5432 (override
with ``OBELISK_TEST_POSTGRES``). For PostgreSQL a template database is migrated once per session
and cloned for each test, as procrastinate does; when the server is unreachable the PostgreSQL
variants are skipped and the reason is printed at the end of the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from obelisk.core.levels import Level
from obelisk.index.base import Index, StoreOutcome
from obelisk.index.postgres import PostgresIndex
from obelisk.index.sqlite import SqliteIndex

from .dicom_files import SampleInstance, sample_instances

POSTGRES_SERVER = os.environ.get("OBELISK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
NOW = "20240101T120000"

_postgres_problems: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for reason in sorted(set(_postgres_problems)):
        terminalreporter.write_line(f"SKIPPED PostgreSQL contract tests: {reason}", yellow=True)


def _admin_connection() -> psycopg.Connection[Any]:
    return psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated database that each PostgreSQL test clones."""
    try:
        admin = _admin_connection()
    except psycopg.OperationalError as exc:
        where = POSTGRES_SERVER.rsplit("@", 1)[-1]
        reason = f"PostgreSQL not reachable on {where}: {exc}".strip()
        _postgres_problems.append(reason)
        pytest.skip(reason)
    name = f"obelisk_template_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
        try:
            PostgresIndex(f"{POSTGRES_SERVER}/{name}").close()
            yield name
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Backend:
    """Opens indexes on one database; closes them all at the end of the test."""

    name: str
    factory: Callable[[], Index]
    location: str
    opened: list[Index] = field(default_factory=list)

    def open(self) -> Index:
        index = self.factory()
        self.opened.append(index)
        return index

    def close_all(self) -> None:
        for index in self.opened:
            index.close()
        self.opened.clear()


@pytest.fixture
def postgres_database(postgres_template: str) -> Iterator[str]:
    """URL of a fresh database, cloned from the migrated template and dropped afterwards."""
    name = f"obelisk_test_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {postgres_template}")
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        with _admin_connection() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if kind == "sqlite-file":
        path = tmp_path / "index" / "index.db"
        return Backend(kind, lambda: SqliteIndex(path), str(path))
    if kind == "sqlite-memory":
        return Backend(kind, lambda: SqliteIndex(":memory:"), ":memory:")
    url = request.getfixturevalue("postgres_database")
    return Backend(kind, lambda: PostgresIndex(url), url)


_POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)


@pytest.fixture(params=["sqlite-file", "sqlite-memory", _POSTGRES])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = _make_backend(request.param, request, tmp_path)
    yield made
    made.close_all()


@pytest.fixture(params=["sqlite-file", _POSTGRES])
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Back-ends that several index objects (or processes) can open at once."""
    made = _make_backend(request.param, request, tmp_path)
    yield made
    made.close_all()


@pytest.fixture
def index(backend: Backend) -> Index:
    return backend.open()


@dataclass
class Loaded:
    """The sample tree, stored in an index."""

    index: Index
    samples: list[SampleInstance]
    outcomes: list[StoreOutcome]

    def internal_id(self, level: Level, public_id: str) -> int:
        found = self.index.lookup(public_id, level)
        assert found is not None
        return found.internal_id

    def public_ids(self, level: Level) -> list[str]:
        """Public ids of ``level`` in the order they were first stored."""
        seen: dict[str, None] = {}
        for sample in self.samples:
            seen.setdefault(sample.public_id(level), None)
        return list(seen)


def store_all(index: Index, samples: list[SampleInstance]) -> list[StoreOutcome]:
    with index.write() as writer:
        return [writer.store_instance(s.new, overwrite=False, now=NOW) for s in samples]


@pytest.fixture(scope="session")
def samples() -> list[SampleInstance]:
    return list(sample_instances())


@pytest.fixture
def loaded(index: Index, samples: list[SampleInstance]) -> Loaded:
    return Loaded(index, samples, store_all(index, samples))
