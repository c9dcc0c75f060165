"""Measures ``find`` at study level and the writer's throughput on a large index.

Not a test (pytest does not collect it): run it by hand, e.g.::

    python tests/contract/measure_find.py                      # SQLite and PostgreSQL
    python tests/contract/measure_find.py --backends sqlite --studies 20000

It fills each back-end with ``--studies`` studies (one series, one instance each, about 2.5 studies
per patient) through the writer API, ``--batch`` instances per transaction, built as
``NewInstance`` objects directly (no DICOM files). Then it times ``find`` for a few study-level
searches with ``LIMIT 100`` and prints p50/p95 and the query plan of each. Last, it stores
``--series-instances`` more instances in series of ``--per-series`` (the usual shape of an
ingest) into the filled index. PostgreSQL runs in a scratch database on 127.0.0.1:5432
(``--postgres`` to change), dropped at the end.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from obelisk.core.identifiers import ResourceIds
from obelisk.core.levels import Level
from obelisk.core.matching import Constraint, parse_constraint
from obelisk.core.tags import parse_tag
from obelisk.index.base import Attachment, NewInstance
from obelisk.index.postgres import PostgresIndex
from obelisk.index.sql import SqlIndex
from obelisk.index.sqlite import SqliteIndex

NOW = "20240101T120000"
GIVEN_NAMES = ["John", "Johnny", "Mary", "Anna", "Peter", "Paul", "Marie", "Hans", "Eva", "Luc"]
GIVEN_NAMES += ["Sofia", "Ali", "Chen", "Olga", "Ines", "Jean", "Tom", "Zoe", "Ivan", "Nina"]

#: The searches timed, as ``/tools/find`` receives them (``CaseSensitive`` false).
QUERIES: dict[str, dict[str, str]] = {
    "PatientName=ABC*": {"PatientName": "ABC*"},
    "PatientName=abc* (lower case)": {"PatientName": "abc*"},
    "PatientName=A*": {"PatientName": "A*"},
    "PatientName=*OHN*": {"PatientName": "*OHN*"},
    "StudyDate=20200101-20200131": {"StudyDate": "20200101-20200131"},
    "StudyDate=2020 (year)": {"StudyDate": "20200101-20201231"},
    "ABC* + month": {"PatientName": "ABC*", "StudyDate": "20200101-20200131"},
    "A* + year": {"PatientName": "A*", "StudyDate": "20200101-20201231"},
    "*OHN* + month": {"PatientName": "*OHN*", "StudyDate": "20200101-20200131"},
}


@dataclass
class Measured:
    name: str
    matches: int
    p50_ms: float
    p95_ms: float
    plan: list[str]


def _surname(rng: random.Random) -> str:
    # Letters A-J only: "ABC*" matches about 0.1 % of patients, "A*" about 10 %.
    length = rng.randint(5, 9)
    return "".join(rng.choice("ABCDEFGHIJ") for _ in range(length)).capitalize()


def _study_date(rng: random.Random) -> str:
    day = rng.randrange(15 * 365)  # 2010-2024
    return time.strftime("%Y%m%d", time.gmtime(1262304000 + day * 86400))


def generate(
    instances: int, *, per_series: int = 1, root: int = 9, seed: int = 7
) -> Iterator[NewInstance]:
    """Studies of one series of ``per_series`` instances; 2.5 studies per patient on average."""
    rng = random.Random(seed)
    patient = 0
    patient_tags: dict[str, str] = {}
    study_tags: dict[str, str] = {}
    series_tags: dict[str, str] = {}
    for number in range(instances):
        study, position = divmod(number, per_series)
        if position == 0:
            if study == 0 or rng.random() < 0.4:
                patient += 1
                patient_tags = {
                    "PatientName": f"{_surname(rng)}^{rng.choice(GIVEN_NAMES)}",
                    "PatientID": f"PID{root}-{patient:07d}",
                    "PatientBirthDate": f"19{rng.randint(20, 99)}0101",
                    "PatientSex": rng.choice("MFO"),
                }
            study_uid = f"1.2.826.0.1.3680043.8.498.{root}.{study}"
            study_tags = {
                "StudyDate": _study_date(rng),
                "StudyTime": "101500",
                "StudyDescription": rng.choice(["CT HEAD", "MR KNEE", "CHEST", "ABDOMEN"]),
                "AccessionNumber": f"ACC{root}-{study:08d}",
                "StudyInstanceUID": study_uid,
            }
            series_tags = {
                "Modality": rng.choice(["CT", "MR", "US", "CR"]),
                "SeriesNumber": "1",
                "SeriesInstanceUID": f"{study_uid}.1",
            }
        sop_uid = f"{series_tags['SeriesInstanceUID']}.{position + 1}"
        ids = ResourceIds.compute(
            patient_tags["PatientID"],
            study_tags["StudyInstanceUID"],
            series_tags["SeriesInstanceUID"],
            sop_uid,
        )
        yield NewInstance(
            public_ids=ids.by_level(),
            main_tags={
                Level.PATIENT: patient_tags,
                Level.STUDY: study_tags,
                Level.SERIES: series_tags,
                Level.INSTANCE: {"InstanceNumber": str(position + 1), "SOPInstanceUID": sop_uid},
            },
            attachments=[
                Attachment(
                    1,
                    str(uuid.UUID(int=rng.getrandbits(128))),
                    500_000,
                    "0" * 32,
                    500_000,
                    "0" * 32,
                )
            ],
            metadata={
                1: str(position + 1),
                2: NOW,
                9: "1.2.840.10008.1.2.1",
                10: "1.2.840.10008.5.1.4.1.1.2",
            },
        )


def fill(index: SqlIndex, instances: Iterable[NewInstance], batch: int) -> float:
    """Stores the instances, ``batch`` per transaction; returns instances per second of the
    write transactions (building the inputs is not timed)."""
    pending: list[NewInstance] = []
    spent = 0.0
    stored = 0

    def flush() -> None:
        nonlocal stored, spent
        started = time.perf_counter()
        with index.write() as writer:
            for new in pending:
                writer.store_instance(new, overwrite=False, now=NOW)
        spent += time.perf_counter() - started
        stored += len(pending)
        pending.clear()
        if stored % 20_000 < batch:
            print(f"  {stored:>7} instances stored, {stored / spent:,.0f}/s", flush=True)

    for new in instances:
        pending.append(new)
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    return stored / spent


def _constraints(query: dict[str, str]) -> list[Constraint]:
    made = [parse_constraint(parse_tag(k), v, case_sensitive=False) for k, v in query.items()]
    return [c for c in made if c is not None]


def _plan(index: SqlIndex, constraints: list[Constraint], limit: int) -> list[str]:
    sql, params = index._find_sql(Level.STUDY, constraints, since=0, limit=limit)
    if isinstance(index, PostgresIndex):
        rows = index._query("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
        return [str(row[0]) for row in rows]
    rows = index._query("EXPLAIN QUERY PLAN " + sql, params)
    return [f"{'  ' * _depth(rows, row)}{row[3]}" for row in rows]


def _depth(rows: list[Any], row: Any) -> int:
    parents = {r[0]: r[1] for r in rows}
    depth, parent = 0, row[1]
    while parent in parents:
        depth, parent = depth + 1, parents[parent]
    return depth


def measure(index: SqlIndex, repeat: int, limit: int) -> list[Measured]:
    results = []
    for name, query in QUERIES.items():
        constraints = _constraints(query)
        for _ in range(5):  # warm the caches and the prepared statements
            found = index.find(Level.STUDY, constraints, since=0, limit=limit)
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            index.find(Level.STUDY, constraints, since=0, limit=limit)
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        results.append(
            Measured(
                name=name,
                matches=len(found),
                p50_ms=statistics.median(timings),
                p95_ms=timings[int(len(timings) * 0.95) - 1],
                plan=_plan(index, constraints, limit),
            )
        )
    return results


def report(
    backend: str, throughputs: dict[str, float], results: list[Measured], plans: bool
) -> None:
    print(f"\n== {backend}")
    for label, throughput in throughputs.items():
        print(f"store, {label}: {throughput:,.0f} instances/s")
    print(f"{'query (study level, LIMIT 100)':<34} {'found':>6} {'p50 ms':>8} {'p95 ms':>8}")
    for measured in results:
        print(
            f"{measured.name:<34} {measured.matches:>6} "
            f"{measured.p50_ms:>8.2f} {measured.p95_ms:>8.2f}"
        )
    if plans:
        for measured in results:
            print(f"\n-- plan: {measured.name}")
            for line in measured.plan:
                print(f"   {line}")


def _store_series(index: SqlIndex, args: argparse.Namespace) -> dict[str, float]:
    """Throughput for series of ``--per-series`` instances, into the filled index."""
    count = args.series_instances
    print(f"storing {count} instances in series of {args.per_series}")
    instances = generate(count, per_series=args.per_series, root=10, seed=11)
    return {f"series of {args.per_series}": fill(index, instances, args.batch)}


def run_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="obelisk-measure-") as folder:
        index = SqliteIndex(Path(folder) / "index.db")
        try:
            print(f"SQLite ({Path(folder) / 'index.db'}): filling {args.studies} studies")
            throughputs = {"1 instance per study": fill(index, generate(args.studies), args.batch)}
            if args.analyze:  # SQLite has no statistics unless asked (PRAGMA optimize)
                with index.write() as writer:
                    writer._execute("ANALYZE")
            results = measure(index, args.repeat, args.limit)
            throughputs.update(_store_series(index, args))
            report("SQLite", throughputs, results, args.plans)
        finally:
            index.close()


def run_postgres(args: argparse.Namespace) -> None:
    name = f"obelisk_measure_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{args.postgres}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL not reachable on {args.postgres}: {exc}", file=sys.stderr)
        return
    with admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
        try:
            index = PostgresIndex(f"{args.postgres}/{name}")
            try:
                print(f"PostgreSQL ({name}): filling {args.studies} studies")
                throughputs = {
                    "1 instance per study": fill(index, generate(args.studies), args.batch)
                }
                # What autovacuum does after such a load (it vacuums insert-only tables too).
                index._reader().execute("VACUUM ANALYZE")
                results = measure(index, args.repeat, args.limit)
                throughputs.update(_store_series(index, args))
                report("PostgreSQL", throughputs, results, args.plans)
            finally:
                index.close()
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="instances per transaction")
    parser.add_argument("--per-series", type=int, default=50, help="for the second store test")
    parser.add_argument("--series-instances", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=200, help="timed runs of each search")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--no-plans", dest="plans", action="store_false")
    parser.add_argument("--analyze", action="store_true", help="ANALYZE the SQLite index first")
    args = parser.parse_args(argv)
    runners: dict[str, Callable[[argparse.Namespace], None]] = {
        "sqlite": run_sqlite,
        "postgres": run_postgres,
    }
    for backend in args.backends.split(","):
        runners[backend.strip()](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
