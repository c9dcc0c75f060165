"""DICOM network benchmark: C-STORE ingest and C-FIND latency, Obelisk against Orthanc 1.10.1.

    python bench/dicom_network.py             # default: 3 rounds
    python bench/dicom_network.py --quick     # 200 instances, 1 round (smoke test)

Input: the ``studies`` set of ``tests/support/synthetic.py`` (1,000 CT instances of 256x256,
100 studies), written once to files.

C-STORE: in each round and for each server kind (the order alternating between rounds), a fresh
empty server is started and Debian's dcmtk ``storescu`` sends every file over one association;
then another fresh server receives the set from two ``storescu`` processes at once (one half
each, two associations). instances/s = files / wall time; every instance must be in
``/statistics`` afterwards. Both servers and dcmtk run with ``TCP_NODELAY=1``.

``--ceiling`` adds, per round and kind, two independent servers of that kind receiving one
association each: what the machine gives two senders when nothing is shared, the bound for
any single server's two-association figure.

C-FIND: on the server loaded by the last two-association run, one pynetdicom association sends
``--find-iterations`` Study Root C-FIND requests per query and round, interleaving the servers;
p50/p95 latencies per request (including reading every answer) are reported.

Results go to ``bench/results/dicom_network-<stamp>.json``. Targets (reported, never enforced):
one association >= 1.0x Orthanc instances/s, two associations >= 1.5x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from pydicom import Dataset  # noqa: E402
from pynetdicom import AE, evt  # noqa: E402
from tests.support import synthetic  # noqa: E402

from common import (  # noqa: E402
    COMMON_CONFIG,
    STARTERS,
    Server,
    available_servers,
    format_ratio,
    log,
    machine_info,
    median,
    print_table,
    ratio,
    summarize,
    write_results,
)

AET = "ORTHANC"  # both servers' DicomAet (Obelisk's default is Orthanc's)
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
QUERIES: dict[str, dict[str, str]] = {
    "study-name-prefix": {"QueryRetrieveLevel": "STUDY", "PatientName": "DOE*"},
    "study-by-uid": {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ""},  # filled in
    "series-of-study": {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "", "Modality": ""},
}
TARGETS = {"one_association": 1.0, "two_associations": 1.5}
#: Key of the "two servers, one association each" runs among the association counts.
CEILING = 0
ENV = dict(os.environ, TCP_NODELAY="1")
#: Debian's dcmtk, by path: a virtualenv may put pynetdicom's Python tool of the same name first.
STORESCU = "/usr/bin/storescu"
#: The benchmark's SCU is a known modality on both servers, so that C-FIND is allowed.
CONFIG = {**COMMON_CONFIG, "DicomModalities": {"bench": ["BENCHSCU", "127.0.0.1", 104]}}


def start_server(kind: str, work: Path, label: str) -> Server:
    directory = work / f"{kind}-{label}"
    shutil.rmtree(directory, ignore_errors=True)
    return STARTERS[kind](directory, CONFIG)


def storescu(server: Server, files: list[Path], work: Path) -> subprocess.Popen[bytes]:
    """One association sending ``files`` (listed in a file, so any count fits a command)."""
    return subprocess.Popen(
        [STORESCU, "-aet", "BENCHSCU", "-aec", AET, "127.0.0.1", str(server.dicom_port)]
        + [str(f) for f in files],
        cwd=work,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def store_run(kind: str, files: list[Path], associations: int, work: Path, label: str) -> float:
    server = start_server(kind, work, label)
    try:
        halves = [files[i::associations] for i in range(associations)]
        began = time.perf_counter()
        processes = [storescu(server, half, work) for half in halves]
        for process in processes:
            _, errors = process.communicate(timeout=900)
            if process.returncode != 0:
                raise RuntimeError(f"storescu failed on {kind}: {errors.decode()[-2000:]}")
        elapsed = time.perf_counter() - began
        stored = server.count_instances()
        if stored != len(files):
            raise RuntimeError(f"{kind} stored {stored} of {len(files)} instances")
        return len(files) / elapsed
    finally:
        server.stop()


def two_servers_run(kind: str, files: list[Path], work: Path, label: str) -> float:
    """Two independent servers of one kind, one association each: the machine's ceiling.

    Nothing is shared between the two processes (no GIL, no index, no storage folder), so
    what they reach together is what this machine gives any design for this load; a single
    server with two associations cannot be expected to go beyond it.
    """
    servers = [start_server(kind, work, f"{label}-{n}") for n in range(2)]
    try:
        halves = [files[i::2] for i in range(2)]
        began = time.perf_counter()
        processes = [storescu(s, half, work) for s, half in zip(servers, halves, strict=True)]
        for process in processes:
            _, errors = process.communicate(timeout=900)
            if process.returncode != 0:
                raise RuntimeError(f"storescu failed on {kind}: {errors.decode()[-2000:]}")
        elapsed = time.perf_counter() - began
        stored = sum(s.count_instances() for s in servers)
        if stored != len(files):
            raise RuntimeError(f"{kind} stored {stored} of {len(files)} instances")
        return len(files) / elapsed
    finally:
        for server in servers:
            server.stop()


def _nodelay(event: evt.Event) -> None:
    """Without it every request of the client waits for a delayed ACK (~40 ms)."""
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _associate(server: Server) -> Any:
    ae = AE(ae_title="BENCHSCU")
    ae.add_requested_context(STUDY_ROOT_FIND)
    assoc = ae.associate(
        "127.0.0.1",
        server.dicom_port,
        ae_title=AET,
        evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)],
    )
    if not assoc.is_established:
        raise RuntimeError(f"cannot associate with {server.kind}")
    return assoc


def find_latencies(
    server: Server, query: dict[str, str], iterations: int, problems: list[str]
) -> list[float]:
    """Latencies over one association (a new one if it is lost); mishaps go to ``problems``."""
    identifier = Dataset()
    for keyword, value in query.items():
        setattr(identifier, keyword, value)
    samples = []
    assoc = _associate(server)
    try:
        for _ in range(iterations):
            if not assoc.is_established:
                problems.append(f"{server.kind}: association lost during {dict(query)}")
                assoc = _associate(server)
            began = time.perf_counter()
            answers = [ds for status, ds in assoc.send_c_find(identifier, STUDY_ROOT_FIND) if ds]
            elapsed = (time.perf_counter() - began) * 1000
            if answers:
                samples.append(elapsed)
            else:  # pynetdicom's client sometimes loses a response under load: not a sample
                problems.append(f"{server.kind}: no answer to {dict(query)}")
    finally:
        if assoc.is_established:
            assoc.release()
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="obelisk,orthanc")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--find-iterations", type=int, default=50)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also time two independent servers of each kind, one association each",
    )
    args = parser.parse_args(argv)
    if not Path(STORESCU).exists():
        print("dcmtk's storescu is not installed", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="obelisk-dicom-bench-"))
    instances = synthetic.benchmark_sets()["studies"]
    if args.quick:
        args.rounds, instances = 1, instances[:200]
        args.find_iterations = min(args.find_iterations, 10)
    files = synthetic.write_files(instances, work / "files")
    QUERIES["study-by-uid"]["StudyInstanceUID"] = instances[0].study_uid
    QUERIES["series-of-study"]["StudyInstanceUID"] = instances[0].study_uid
    kinds = available_servers(args.servers.split(","), work)
    log(f"servers: {kinds}; {len(files)} files")
    # 1 and 2: associations to one server; CEILING: two servers, one association each.
    counts = (1, 2, CEILING) if args.ceiling else (1, 2)
    rates: dict[str, dict[int, list[float]]] = {k: {n: [] for n in counts} for k in kinds}
    latencies: dict[str, dict[str, list[float]]] = {k: {q: [] for q in QUERIES} for k in kinds}
    problems: list[str] = []
    try:
        for round_number in range(args.rounds):
            order = kinds if round_number % 2 == 0 else kinds[::-1]
            for associations in (1, 2):
                for kind in order:
                    rate = store_run(
                        kind, files, associations, work, f"r{round_number}-x{associations}"
                    )
                    rates[kind][associations].append(rate)
                    log(f"round {round_number}: {kind} x{associations}: {rate:.0f} inst/s")
            for kind in order if args.ceiling else ():
                rate = two_servers_run(kind, files, work, f"r{round_number}-two")
                rates[kind][CEILING].append(rate)
                log(f"round {round_number}: two {kind} servers x1 each: {rate:.0f} inst/s")
        servers = {kind: start_server(kind, work, "find") for kind in kinds}
        try:
            for server in servers.values():
                processes = [storescu(server, files[i::2], work) for i in range(2)]
                for process in processes:
                    process.communicate(timeout=900)
            for round_number in range(args.rounds):
                order = kinds if round_number % 2 == 0 else kinds[::-1]
                for name, query in QUERIES.items():
                    for kind in order:
                        found = find_latencies(servers[kind], query, args.find_iterations, problems)
                        latencies[kind][name].extend(found)
        finally:
            for server in servers.values():
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results: dict[str, Any] = {
        "benchmark": "dicom_network",
        "machine": machine_info(),
        "instances": len(files),
        "rounds": args.rounds,
        "store": {
            k: {("two_servers" if n == CEILING else str(n)): summarize(v) for n, v in r.items()}
            for k, r in rates.items()
        },
        "find_ms": {k: {q: summarize(v) for q, v in r.items()} for k, r in latencies.items()},
        "problems": problems,
    }
    rows = []
    for associations in (1, 2):
        values = {k: median(rates[k][associations]) for k in kinds}
        target = TARGETS["one_association" if associations == 1 else "two_associations"]
        rows.append(
            [
                f"C-STORE x{associations} (inst/s)",
                *(f"{values[k]:.0f}" for k in kinds),
                format_ratio(ratio(values.get("obelisk"), values.get("orthanc")), f">={target}"),
            ]
        )
    if args.ceiling:
        values = {k: median(rates[k][CEILING]) for k in kinds}
        rows.append(
            [
                "C-STORE 2 servers x1 (inst/s)",
                *(f"{values[k]:.0f}" for k in kinds),
                format_ratio(ratio(values.get("obelisk"), values.get("orthanc"))),
            ]
        )
        for kind in kinds:  # how much of the machine's two-sender ceiling one server reaches
            share = ratio(median(rates[kind][2]), values[kind])
            rows.append([f"{kind} x2 / its ceiling", *("" for _ in kinds), format_ratio(share)])
    for name in QUERIES:
        values = {k: median(latencies[k][name]) for k in kinds}
        rows.append(
            [
                f"C-FIND {name} p50 (ms)",
                *(f"{values[k]:.2f}" for k in kinds),
                format_ratio(ratio(values.get("obelisk"), values.get("orthanc"))),
            ]
        )
    print_table(["measure", *kinds, "obelisk/orthanc"], rows)
    for problem in problems:
        print(f"! {problem}")
    if not args.no_write:
        log(f"results: {write_results('dicom_network', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
