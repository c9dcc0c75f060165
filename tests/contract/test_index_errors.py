"""Database failures: shown as Obelisk errors, and survived (lost connections, deadlocks)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from obelisk.core.levels import Level
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.index.base import Index
from obelisk.index.postgres import PostgresIndex

from .conftest import NOW, POSTGRES_SERVER, Loaded, store_all
from .dicom_files import SampleInstance


def test_a_database_error_is_an_obelisk_error(index: Index, samples: list[SampleInstance]) -> None:
    store_all(index, samples[:1])
    with pytest.raises(ObeliskError) as raised, index.write() as writer:
        writer.store_instance(samples[1].new, overwrite=False, now=NOW)
        writer.set_metadata(987_654, 1024, "no such resource")  # a foreign key violation
    assert raised.value.code is ErrorCode.Database
    assert raised.value.__cause__ is not None
    assert index.totals().instances == 1  # the transaction was rolled back…
    store_all(index, samples[1:2])  # …and the index is still usable
    assert index.totals().instances == 2


def test_errors_of_the_caller_pass_through(index: Index) -> None:
    with pytest.raises(KeyError), index.write() as writer:
        writer.set_global("key", "value")
        raise KeyError("not a database error")
    assert index.get_global("key") is None


@pytest.fixture
def replicas(postgres_database: str) -> Iterator[tuple[PostgresIndex, PostgresIndex]]:
    first, second = PostgresIndex(postgres_database), PostgresIndex(postgres_database)
    yield first, second
    first.close()
    second.close()


def _terminate_connections(url: str) -> int:
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        ).fetchall()
    return len(rows)


@pytest.mark.postgres
def test_lost_postgres_connections_are_replaced(
    postgres_database: str, samples: list[SampleInstance]
) -> None:
    index = PostgresIndex(postgres_database)
    try:
        store_all(index, samples[:1])
        assert index.totals().instances == 1
        reader = threading.Thread(target=index.totals)  # a second reading connection
        reader.start()
        reader.join()
        assert _terminate_connections(postgres_database) >= 2  # the writer and the readers

        assert index.totals().instances == 1  # a read reconnects
        store_all(index, samples[1:2])  # and so does the writer
        assert index.totals().instances == 2
    finally:
        index.close()


@pytest.mark.postgres
def test_a_deadlock_between_replicas_fails_one_transaction_cleanly(
    replicas: tuple[PostgresIndex, PostgresIndex], samples: list[SampleInstance]
) -> None:
    first, second = replicas
    loaded = Loaded(first, samples, store_all(first, samples))
    patients = [loaded.internal_id(Level.PATIENT, p) for p in loaded.public_ids(Level.PATIENT)]
    both_locked = threading.Barrier(2)
    errors: list[ObeliskError] = []

    def cross(index: Index, mine: int, theirs: int) -> None:
        try:
            with index.write() as writer:
                writer.set_protected(mine, True)
                both_locked.wait(10)
                writer.set_protected(theirs, True)  # each waits for the other: a deadlock
        except ObeliskError as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=cross, args=(first, patients[0], patients[1])),
        threading.Thread(target=cross, args=(second, patients[1], patients[0])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [e.code for e in errors] == [ErrorCode.DatabaseCannotSerialize]
    assert errors[0].http_status == 503
    protected = [first.lookup(p) for p in loaded.public_ids(Level.PATIENT)[:2]]
    assert [p is not None and p.protected for p in protected] == [True, True]
    for index in (first, second):  # both replicas still write
        with index.write() as writer:
            writer.set_protected(patients[2], True)


@pytest.mark.postgres
def test_postgres_statistics_follow_the_growth_of_the_index(
    postgres_database: str, samples: list[SampleInstance], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics taken on the empty index would make the writer scan whole tables."""
    monkeypatch.setattr("obelisk.index.postgres._ANALYZE_AT_LEAST", 20)
    index = PostgresIndex(postgres_database)
    try:
        index._reader().execute("ANALYZE")  # statistics of an empty index
        store_all(index, samples[:3])  # 6 resources: not yet
        assert index._one("SELECT reltuples FROM pg_class WHERE relname = 'resources'")[0] <= 0
        store_all(index, samples[3:])  # 37 resources in all
        rows = index._one("SELECT reltuples FROM pg_class WHERE relname = 'resources'")[0]
        assert rows == 37
    finally:
        index.close()
