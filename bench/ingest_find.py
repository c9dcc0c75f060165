"""Ingest and /tools/find benchmark: Obelisk against Orthanc 1.10.1, on this machine.

    python bench/ingest_find.py                 # default: 5 rounds, ~5 minutes
    python bench/ingest_find.py --quick         # smoke test of the harness (~1 minute)
    python bench/ingest_find.py --big           # adds /tools/find with 100,000 studies (long)

Inputs (``tests/support/synthetic.py``, deterministic): ``studies`` = 1,000 CT instances of
256x256 over 100 studies (10 slices, one series each); ``volume`` = one 300-slice 512x512 study.

Ingest: for each round, each client count (1 and 4) and each input set, a fresh empty server of
each kind is started (the order of the kinds alternates between rounds), the set is POSTed to
``/instances`` by N keep-alive clients, and instances/s is recorded; the server is then stopped
(its files stay until the end: see ``Server.stop``). The median over the rounds is reported.

``--ceiling`` adds, per round, set and kind, two independent servers of that kind sharing the
largest client count (clients alternate between them): what this machine gives that many
clients when nothing is shared, the bound for one server's figure.

Find: both servers are started once, loaded with ``studies`` (and, with ``--big``, 100,000 more
one-instance studies, uploaded through REST by ``--fill-clients`` clients; the fill time is
reported), then each query is sent ``--find-iterations`` times per round by one sequential client,
rounds interleaving the servers. p50/p95 latencies are reported, and the answers of both servers
are compared (same Orthanc IDs expected).

Results go to ``bench/results/ingest_find-<UTC stamp>.json`` (and ``ingest_find-latest.json``).
Targets (reported, never enforced): ingest >= 1.5x Orthanc at 4 clients and >= 1.2x at 1 client;
find p50 <= 0.7x Orthanc (<= 0.5x with 100k studies).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # bench/common.py and tests/support/

from tests.support import synthetic  # noqa: E402

from common import (  # noqa: E402
    Server,
    available_servers,
    format_ratio,
    log,
    machine_info,
    median,
    print_table,
    ratio,
    start_server,
    summarize,
    time_requests,
    upload,
    write_results,
)

QUERIES: dict[str, dict[str, Any]] = {
    "name-prefix": {"Level": "Study", "Query": {"PatientName": "DOE*"}},
    "name-contains": {"Level": "Study", "Query": {"PatientName": "*OHN*"}},
    "date-range": {"Level": "Study", "Query": {"StudyDate": "20200101-20200331"}},
    "name-and-date": {
        "Level": "Study",
        "Query": {"PatientName": "DOE*", "StudyDate": "20150101-20201231"},
    },
    "name-prefix-expand": {"Level": "Study", "Query": {"PatientName": "DOE*"}, "Expand": True},
}

#: Studies in the ``studies`` set (quick mode: 20 studies of 5 slices).
BASE_STUDIES = {False: 100, True: 20}

TARGETS = {
    "ingest_1": (">=", 1.2),
    "ingest_4": (">=", 1.5),
    "find_p50": ("<=", 0.7),
    "find_p50_big": ("<=", 0.5),
}
#: Key of the "two servers share the clients" runs beside the client counts.
CEILING = "two_servers"


def build_sets(quick: bool) -> dict[str, list[bytes]]:
    log("generating the synthetic DICOM sets…")
    start = time.perf_counter()
    if quick:
        studies = [i.data for i in synthetic.make_dataset(20, 5, 256, seed="obelisk-bench")]
        volume = [i.data for i in synthetic.make_volume(30, 512, seed="obelisk-bench-volume")]
    else:
        sets = synthetic.benchmark_sets()
        studies = [i.data for i in sets["studies"]]
        volume = [i.data for i in sets["volume"]]
    log(
        f"generated {len(studies)} + {len(volume)} files "
        f"({(sum(map(len, studies)) + sum(map(len, volume))) / 1e6:.0f} MB) "
        f"in {time.perf_counter() - start:.1f}s"
    )
    return {"studies": studies, "volume": volume}


def set_label(name: str, files: list[bytes], quick: bool) -> str:
    if name == "studies":
        return f"{len(files)} x 256x256"
    return f"{len(files)} x 512x512 (1 study)"


# --------------------------------------------------------------------------- ingest


def bench_ingest(
    kinds: list[str],
    sets: dict[str, list[bytes]],
    client_counts: list[int],
    rounds: int,
    work: Path,
    ceiling: bool = False,
) -> dict[str, Any]:
    runs: dict[str, dict[str, dict[str, list[float]]]] = {
        name: {str(c): {k: [] for k in kinds} for c in client_counts} for name in sets
    }
    if ceiling:  # the largest client count, shared by two independent servers of each kind
        for name in sets:
            runs[name][CEILING] = {k: [] for k in kinds}
    problems: list[str] = []
    for r in range(rounds):
        order = kinds if r % 2 == 0 else list(reversed(kinds))
        for clients in client_counts:
            for name, files in sets.items():
                for kind in order:
                    server = start_server(kind, work, f"ingest-{name}-{clients}-r{r}")
                    try:
                        result = upload(server.url, files, clients)
                        stored = server.count_instances()
                    finally:
                        server.stop()
                    ok = result.statuses.get("Success", 0) == len(files) and stored == len(files)
                    if not ok:
                        problems.append(
                            f"{kind} {name} c={clients} round {r}: statuses {result.statuses}, "
                            f"stored {stored}/{len(files)}; {result.errors[:3]}"
                        )
                    runs[name][str(clients)][kind].append(round(result.rate, 2))
                    log(
                        f"ingest round {r + 1}/{rounds} {name:7} clients={clients} {kind:7} "
                        f"{result.rate:8.1f} inst/s ({result.seconds:.1f}s)" + ("" if ok else " !")
                    )
        for name, files in sets.items() if ceiling else ():
            for kind in order:
                rate = two_servers_rate(
                    kind, files, max(client_counts), work, problems, f"{name}-r{r}"
                )
                runs[name][CEILING][kind].append(round(rate, 2))
                log(
                    f"ingest round {r + 1}/{rounds} {name:7} two {kind} servers, "
                    f"{max(client_counts)} clients in all: {rate:8.1f} inst/s"
                )
    summary: dict[str, Any] = {}
    for name, by_clients in runs.items():
        summary[name] = {}
        for count, by_kind in by_clients.items():
            medians = {k: round(median(v), 2) for k, v in by_kind.items() if v}
            summary[name][count] = {
                "runs_inst_per_s": by_kind,
                "median_inst_per_s": medians,
                "ratio_obelisk_orthanc": ratio(medians.get("obelisk"), medians.get("orthanc")),
            }
    return {"results": summary, "problems": problems}


def two_servers_rate(
    kind: str, files: list[bytes], clients: int, work: Path, problems: list[str], label: str
) -> float:
    """Two independent servers of one kind sharing ``clients`` clients: the machine's ceiling
    for that load, as nothing (GIL, index, storage folder) is shared between them."""
    servers = [start_server(kind, work, f"ingest-two-{label}-{n}") for n in range(2)]
    try:
        result = upload([s.url for s in servers], files, clients)
        stored = sum(s.count_instances() for s in servers)
    finally:
        for server in servers:
            server.stop()
    if result.statuses.get("Success", 0) != len(files) or stored != len(files):
        problems.append(f"two {kind} servers: statuses {result.statuses}, stored {stored}")
    return result.rate


# --------------------------------------------------------------------------- find


def answer_ids(answer: Any) -> list[str]:
    if not isinstance(answer, list):
        return []
    return sorted(x["ID"] if isinstance(x, dict) else str(x) for x in answer)


def measure_find(
    servers: dict[str, Server], rounds: int, iterations: int, warmup: int
) -> dict[str, Any]:
    samples: dict[str, dict[str, list[float]]] = {q: {k: [] for k in servers} for q in QUERIES}
    answers: dict[str, dict[str, list[str]]] = {q: {} for q in QUERIES}
    clients = {k: httpx.Client(base_url=s.url, timeout=300) for k, s in servers.items()}
    try:
        kinds = list(servers)
        for r in range(rounds):
            order = kinds if r % 2 == 0 else list(reversed(kinds))
            for kind in order:
                for name, query in QUERIES.items():
                    latencies, answer = time_requests(
                        clients[kind], "POST", "/tools/find", query, iterations, warmup
                    )
                    samples[name][kind].extend(latencies)
                    answers[name][kind] = answer_ids(answer)
            log(f"find round {r + 1}/{rounds} done")
    finally:
        for client in clients.values():
            client.close()
    result: dict[str, Any] = {}
    for name in QUERIES:
        stats = {k: summarize(v) for k, v in samples[name].items()}
        ids = answers[name]
        distinct = {tuple(v) for v in ids.values()}
        result[name] = {
            "query": QUERIES[name],
            "latency_ms": stats,
            "matches": {k: len(v) for k, v in ids.items()},
            "same_answer": len(distinct) <= 1,
            "ratio_p50_obelisk_orthanc": ratio(
                stats.get("obelisk", {}).get("p50"), stats.get("orthanc", {}).get("p50")
            ),
            "ratio_p95_obelisk_orthanc": ratio(
                stats.get("obelisk", {}).get("p95"), stats.get("orthanc", {}).get("p95")
            ),
        }
    return result


def fill(servers: dict[str, Server], count: int, clients: int) -> dict[str, Any]:
    """Upload ``count`` one-instance studies to every server; returns timings."""
    log(f"generating {count} tiny studies…")
    files = [synthetic.make_tiny_study(i).data for i in range(count)]
    timings: dict[str, Any] = {}
    for kind, server in servers.items():
        log(f"filling {kind} with {count} studies ({clients} clients)…")

        def progress(index: int, kind: str = kind) -> None:
            if index % 10000 == 0 and index:
                log(f"  {kind}: {index}/{count}")

        result = upload(server.url, files, clients, progress=progress)
        timings[kind] = {
            "seconds": round(result.seconds, 1),
            "inst_per_s": round(result.rate, 1),
            "statuses": result.statuses,
        }
        log(f"filled {kind}: {result.seconds:.0f}s, {result.rate:.0f} inst/s, {result.statuses}")
    return timings


def bench_find(
    kinds: list[str],
    studies: list[bytes],
    base_studies: int,
    rounds: int,
    iterations: int,
    warmup: int,
    big: int,
    fill_clients: int,
    work: Path,
) -> dict[str, Any]:
    servers: dict[str, Server] = {}
    result: dict[str, Any] = {}
    try:
        for kind in kinds:
            servers[kind] = start_server(kind, work, "find")
            loaded = upload(servers[kind].url, studies, 4)
            log(f"loaded {kind} with {len(studies)} instances: {loaded.statuses}")
        result[f"{base_studies}-studies"] = measure_find(servers, rounds, iterations, warmup)
        if big:
            result["fill"] = fill(servers, big, fill_clients)
            label = f"{base_studies + big}-studies"
            result[label] = measure_find(servers, rounds, iterations, warmup)
    finally:
        for server in servers.values():
            server.stop()
    return result


# --------------------------------------------------------------------------- report


def verdict(value: float | None, target: tuple[str, float]) -> str:
    if value is None:
        return "n/a"
    op, bound = target
    ok = value >= bound if op == ">=" else value <= bound
    return ("meets" if ok else "misses") + f" {op}{bound}"


def report(results: dict[str, Any], sets: dict[str, list[bytes]], quick: bool) -> None:
    ingest = results.get("ingest", {}).get("results", {})
    if ingest:
        print("\nREST ingest, POST /instances (instances/s, median over rounds)")
        rows = []
        for name, by_clients in ingest.items():
            for clients, data in by_clients.items():
                med = data["median_inst_per_s"]
                two = clients == CEILING
                target = TARGETS["ingest_4" if clients == "4" else "ingest_1"]
                rows.append(
                    [
                        set_label(name, sets[name], quick),
                        "2 servers" if two else clients,
                        med.get("orthanc", "-"),
                        med.get("obelisk", "-"),
                        format_ratio(data["ratio_obelisk_orthanc"]),
                        "(ceiling)" if two else verdict(data["ratio_obelisk_orthanc"], target),
                    ]
                )
        print_table(["set", "clients", "orthanc", "obelisk", "obelisk/orthanc", "target"], rows)
    find = results.get("find", {})
    for index_label, queries in find.items():
        if index_label == "fill":
            print("\nIndex fill (one-instance studies through REST)")
            print_table(
                ["server", "seconds", "inst/s"],
                [[k, v["seconds"], v["inst_per_s"]] for k, v in queries.items()],
            )
            continue
        big = index_label != next(iter(find))
        print(f"\nPOST /tools/find, Study level, index = {index_label} (latency ms)")
        rows = []
        for name, data in queries.items():
            lat = data["latency_ms"]

            def cell(kind: str, lat: dict[str, Any] = lat) -> str:
                s = lat.get(kind)
                return f"{s['p50']:.2f} / {s['p95']:.2f}" if s else "-"

            rows.append(
                [
                    name,
                    cell("orthanc"),
                    cell("obelisk"),
                    format_ratio(data["ratio_p50_obelisk_orthanc"]),
                    verdict(
                        data["ratio_p50_obelisk_orthanc"],
                        TARGETS["find_p50_big" if big else "find_p50"],
                    ),
                    "/".join(str(v) for v in data["matches"].values()),
                    "yes" if data["same_answer"] else "NO",
                ]
            )
        print_table(
            [
                "query",
                "orthanc p50/p95",
                "obelisk p50/p95",
                "p50 ratio",
                "target",
                "matches",
                "same",
            ],
            rows,
        )
    for problem in results.get("ingest", {}).get("problems", []):
        print(f"! {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Ingest and /tools/find benchmark, Obelisk vs Orthanc 1.10.1."
    )
    parser.add_argument("--servers", default="obelisk,orthanc", help="comma-separated kinds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", default="1,4", help="ingest client counts")
    parser.add_argument("--find-iterations", type=int, default=40, help="per query and round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sets, 1 round (smoke test)")
    parser.add_argument(
        "--big", action="store_true", help="also measure find after adding --big-count studies"
    )
    parser.add_argument("--big-count", type=int, default=100_000)
    parser.add_argument("--fill-clients", type=int, default=4)
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also time two independent servers of each kind sharing the most clients",
    )
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-find", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: tmp)")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
        args.find_iterations = min(args.find_iterations, 10)
        if args.big:
            args.big_count = min(args.big_count, 2000)

    work = args.work or Path(tempfile.mkdtemp(prefix="obelisk-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        kinds = available_servers([k.strip() for k in args.servers.split(",") if k.strip()], work)
        if not kinds:
            print("no server available", file=sys.stderr)
            return 2
        log(f"servers: {', '.join(kinds)}")
        sets = build_sets(args.quick)
        results: dict[str, Any] = {
            "benchmark": "ingest_find",
            "started_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "machine": machine_info(),
            "servers": kinds,
            "config": {
                "rounds": args.rounds,
                "clients": args.clients,
                "find_iterations_per_round": args.find_iterations,
                "warmup": args.warmup,
                "quick": args.quick,
                "big_count": args.big_count if args.big else 0,
                "fill_clients": args.fill_clients,
                "sets": {name: len(files) for name, files in sets.items()},
                "queries": QUERIES,
            },
            "targets": {k: f"{op}{v}" for k, (op, v) in TARGETS.items()},
        }
        if not args.skip_ingest:
            client_counts = [int(c) for c in args.clients.split(",")]
            results["ingest"] = bench_ingest(
                kinds, sets, client_counts, args.rounds, work, ceiling=args.ceiling
            )
        if not args.skip_find:
            results["find"] = bench_find(
                kinds,
                sets["studies"],
                BASE_STUDIES[args.quick],
                args.rounds,
                args.find_iterations,
                args.warmup,
                args.big_count if args.big else 0,
                args.fill_clients,
                work,
            )
        results["duration_s"] = round(time.time() - started, 1)
        report(results, sets, args.quick)
        if not args.no_write:
            path = write_results("ingest_find" + ("-quick" if args.quick else ""), results)
            print(f"\nresults: {path}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
