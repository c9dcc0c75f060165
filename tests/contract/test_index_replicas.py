"""Several index objects on one database (replicas, restarts): migrations and concurrent writers."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from obelisk.core.changes import ChangeType
from obelisk.core.levels import Level
from obelisk.core.matching import parse_constraint
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.index.base import Index, StoreOutcome
from obelisk.index.sql import SqlIndex

from .conftest import NOW, Backend, store_all
from .dicom_files import InstanceSpec, SampleInstance, sample_instances


def _applied_migrations(index: Index) -> list[int]:
    assert isinstance(index, SqlIndex)
    return [row[0] for row in index._query("SELECT version FROM schema_migrations ORDER BY 1")]


def test_migrate_is_idempotent_on_reopen(
    shared_backend: Backend, samples: list[SampleInstance]
) -> None:
    first = shared_backend.open()
    store_all(first, samples)
    versions = _applied_migrations(first)
    assert versions and versions == sorted(set(versions))
    first.close()

    second = shared_backend.open()
    assert _applied_migrations(second) == versions
    assert second.totals().instances == 12
    assert isinstance(second, SqlIndex)
    second.migrate()
    assert _applied_migrations(second) == versions
    with second.write() as writer:
        outcome = writer.store_instance(samples[0].new, overwrite=False, now=NOW)
    assert outcome.already_stored


def test_migration_2_gives_existing_tag_values_their_level(
    shared_backend: Backend, samples: list[SampleInstance]
) -> None:
    first = shared_backend.open()
    store_all(first, samples)
    assert isinstance(first, SqlIndex)
    constraint = parse_constraint(0x00100010, "doe*", case_sensitive=False)
    assert constraint is not None
    expected = {level: first.find(level, [constraint], since=0, limit=None) for level in Level}
    with first.write() as writer:  # back to the schema of version 1
        for statement in (
            "DROP INDEX tag_values_by_norm",
            "DROP INDEX tag_values_by_value",
            "ALTER TABLE tag_values DROP COLUMN level",
            "CREATE INDEX tag_values_by_norm ON tag_values(tag, value_norm)",
            "CREATE INDEX tag_values_by_value ON tag_values(tag, value)",
            "DELETE FROM schema_migrations WHERE version = 2",
        ):
            writer._execute(statement)
    first.close()

    second = shared_backend.open()
    assert 2 in _applied_migrations(second)
    for level in Level:
        assert second.find(level, [constraint], since=0, limit=None) == expected[level]
    assert [len(ids) for ids in expected.values()] == [2, 3, 4, 6]


def test_a_newer_schema_is_refused(shared_backend: Backend) -> None:
    first = shared_backend.open()
    with first.write() as writer:
        assert isinstance(first, SqlIndex)
        writer._execute("INSERT INTO schema_migrations (version) VALUES (999)")
    first.close()
    with pytest.raises(ObeliskError) as raised:
        shared_backend.open()
    assert raised.value.code is ErrorCode.IncompatibleDatabaseVersion


def test_migrate_twice_is_harmless(index: Index) -> None:
    assert isinstance(index, SqlIndex)
    versions = _applied_migrations(index)
    index.migrate()
    assert _applied_migrations(index) == versions


def _run_together(*calls: Callable[[], Any]) -> list[Any]:
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result(timeout=60) for future in futures]


def _patient_specs(number: int, instances: int) -> list[InstanceSpec]:
    """Instances of one new patient, each in its own study and series."""
    root = "1.2.826.0.1.3680043.8.498.77"
    return [
        InstanceSpec(
            patient_id=f"RACE{number}",
            patient_name=f"Race^{number}",
            study_uid=f"{root}.{number}.{i}",
            study_date="20240101",
            study_description="race",
            series_uid=f"{root}.{number}.{i}.1",
            modality="CT",
            sop_uid=f"{root}.{number}.{i}.1.1",
            instance_number=1,
        )
        for i in range(instances)
    ]


def test_a_writer_waiting_on_a_new_patient_finds_it_created(shared_backend: Backend) -> None:
    """Replica B stores into the patient replica A is creating, while A's transaction is open."""
    replica_a, replica_b = shared_backend.open(), shared_backend.open()
    first, second = sample_instances(_patient_specs(1, 2))
    a_has_stored = threading.Event()

    def store_a() -> StoreOutcome:
        with replica_a.write() as writer:
            outcome = writer.store_instance(first.new, overwrite=False, now=NOW)
            a_has_stored.set()
            time.sleep(0.3)  # B now waits on A's uncommitted patient
        return outcome

    def store_b() -> StoreOutcome:
        assert a_has_stored.wait(10)
        with replica_b.write() as writer:
            return writer.store_instance(second.new, overwrite=False, now=NOW)

    outcome_a, outcome_b = _run_together(store_a, store_b)
    assert outcome_a.created == (Level.PATIENT, Level.STUDY, Level.SERIES)
    assert outcome_b.created == (Level.STUDY, Level.SERIES)
    patient = replica_a.lookup(first.public_id(Level.PATIENT))
    assert patient is not None and len(patient.children) == 2
    changes, _ = replica_b.changes(0, 100)
    assert [c.change_type for c in changes].count(ChangeType.NewPatient) == 1


def _store_at_barrier(
    replica: Index, instance: SampleInstance, gate: threading.Barrier
) -> StoreOutcome:
    gate.wait(10)
    with replica.write() as writer:
        return writer.store_instance(instance.new, overwrite=False, now=NOW)


def test_replicas_racing_on_the_same_new_patients(shared_backend: Backend) -> None:
    replicas = [shared_backend.open() for _ in range(3)]
    rounds = 8
    for number in range(rounds):
        instances = list(sample_instances(_patient_specs(100 + number, len(replicas))))
        gate = threading.Barrier(len(replicas))
        outcomes: list[StoreOutcome] = _run_together(
            *(
                functools.partial(_store_at_barrier, replica, instance, gate)
                for replica, instance in zip(replicas, instances, strict=True)
            )
        )
        assert sum(Level.PATIENT in o.created for o in outcomes) == 1
        assert all(o.created[-2:] == (Level.STUDY, Level.SERIES) for o in outcomes)
    totals = replicas[0].totals()
    assert (totals.patients, totals.studies, totals.instances) == (
        rounds,
        rounds * len(replicas),
        rounds * len(replicas),
    )
    changes, _ = replicas[1].changes(0, 1000)
    assert [c.change_type for c in changes].count(ChangeType.NewPatient) == rounds


def test_replicas_storing_the_same_instance(shared_backend: Backend) -> None:
    replica_a, replica_b = shared_backend.open(), shared_backend.open()
    for number in range(5):
        (instance,) = sample_instances(_patient_specs(200 + number, 1))
        gate = threading.Barrier(2)
        outcomes: list[StoreOutcome] = _run_together(
            functools.partial(_store_at_barrier, replica_a, instance, gate),
            functools.partial(_store_at_barrier, replica_b, instance, gate),
        )
        assert sorted(o.already_stored for o in outcomes) == [False, True]
        assert len({o.instance_internal_id for o in outcomes}) == 1
    assert replica_a.totals().instances == 5
    changes, _ = replica_a.changes(0, 1000)
    assert [c.change_type for c in changes].count(ChangeType.NewInstance) == 5
