"""DICOMweb benchmark: Obelisk against Orthanc 1.10.1 with its DICOMweb plugin, on this machine.

    python bench/dicomweb.py                      # 1,000-instance set + the 300-slice series
    python bench/dicomweb.py --big                # adds QIDO with 100,000 more studies (long)
    python bench/dicomweb.py --big --big-count 20000
    python bench/dicomweb.py --quick              # smoke test of the harness

Inputs (``tests/support/synthetic.py``, the same as ``ingest_find.py``): ``studies`` = 1,000 CT
instances over 100 studies; ``volume`` = one 300-slice 512x512 series (~158 MB). Both servers are
loaded once through ``POST /instances`` (4 clients), then, in rounds that alternate the servers:

* QIDO-RS ``GET {root}/studies?…`` (each query ``--iterations`` times per round, one sequential
  keep-alive client, ``Accept: application/dicom+json``): p50/p95 latency, and whether both
  servers found the same StudyInstanceUIDs;
* WADO-RS ``GET {root}/studies/{st}/series/{se}`` of the 300-slice series with
  ``Accept: multipart/related; type="application/dicom"``: MB/s over the whole body.

The QIDO client is :class:`KeepAliveClient`: one TCP connection per server (``TCP_NODELAY``),
requests written by hand and answers parsed by ``httptools`` (llhttp, uvicorn's parser), the whole
body read, the status checked. Its latency is part of both servers' figures and pushes the ratio
towards 1, so it must be small: measured on this machine (``StudyDate`` query, 1 match) it costs
~0.07 ms of client CPU per request, against ~1.1 ms for ``httpx.Client`` and ~0.3 ms for
``http.client``. It is still real HTTP/1.1 over loopback TCP, and the same for both servers.

With ``--big``, ``--big-count`` one-instance studies are added to both servers through REST and
the QIDO queries run again. Answers are requested without HTTP compression on both sides.
Results go to ``bench/results/dicomweb-<UTC stamp>.json``. Targets (reported, never enforced):
QIDO p50 <= 0.3x Orthanc, WADO-RS MB/s >= 1.0x Orthanc.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httptools
import httpx

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # bench/common.py and tests/support/

from tests.support import orthanc as orthanc_support  # noqa: E402
from tests.support import synthetic  # noqa: E402

from common import (  # noqa: E402
    COMMON_CONFIG,
    Server,
    format_ratio,
    log,
    machine_info,
    median,
    print_table,
    ratio,
    start_obelisk,
    start_orthanc,
    summarize,
    upload,
    write_results,
)
from ingest_find import fill, verdict  # noqa: E402

ROOT = "/dicom-web"
QUERIES: dict[str, str] = {
    "name-prefix": "PatientName=DOE*",
    "date-range": "StudyDate=20200101-20200331",
    "ohif-study-list": (
        "PatientName=*DOE*&StudyDate=19700102-20301231&limit=101&offset=0"
        "&fuzzymatching=false&includefield=00081030,00080060,00080090,00100030"
    ),
}
QIDO_HEADERS = {"Accept": "application/dicom+json", "Accept-Encoding": "identity"}
WADO_HEADERS = {
    "Accept": 'multipart/related; type="application/dicom"',
    "Accept-Encoding": "identity",
}
TARGETS = {"qido_p50": ("<=", 0.3), "wado_mb_s": (">=", 1.0)}


#: Orthanc 1.10.1 with the DICOMweb plugin, its root at ``/dicom-web/``.
ORTHANC_DICOMWEB = {
    "Plugins": [str(orthanc_support.DICOMWEB_PLUGIN)],
    "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
}


def start_servers(kinds: list[str], work: Path) -> dict[str, Server]:
    servers: dict[str, Server] = {}
    for kind in kinds:
        directory = work / f"{kind}-dicomweb"
        shutil.rmtree(directory, ignore_errors=True)
        if kind == "orthanc":
            servers[kind] = start_orthanc(directory, {**COMMON_CONFIG, **ORTHANC_DICOMWEB})
        else:
            servers[kind] = start_obelisk(directory, COMMON_CONFIG)
    return servers


class KeepAliveClient:
    """A minimal HTTP/1.1 GET client on one keep-alive TCP connection (see the module doc)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 600) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self._socket = socket.create_connection((host, int(port)), timeout=timeout)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
        self._head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._complete = False

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._complete = True

    def get(self, path: str) -> bytes:
        """The body of ``GET path``; raises unless the status is 200."""
        self._body, self._complete = [], False
        self._socket.sendall(b"GET " + path.encode("latin-1") + b" HTTP/1.1\r\n" + self._head)
        while not self._complete:
            data = self._socket.recv(1 << 16)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._parser.feed_data(data)
        status = self._parser.get_status_code()
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}")
        return b"".join(self._body)

    def close(self) -> None:
        self._socket.close()


def study_uids(answer: Any) -> list[str]:
    if not isinstance(answer, list):
        return []
    return sorted(item.get("0020000D", {}).get("Value", [""])[0] for item in answer)


def measure_qido(
    servers: dict[str, Server], rounds: int, iterations: int, warmup: int
) -> dict[str, Any]:
    samples: dict[str, dict[str, list[float]]] = {q: {k: [] for k in servers} for q in QUERIES}
    answers: dict[str, dict[str, list[str]]] = {q: {} for q in QUERIES}
    clients = {k: KeepAliveClient(s.url, QIDO_HEADERS) for k, s in servers.items()}
    try:
        kinds = list(servers)
        for r in range(rounds):
            for kind in kinds if r % 2 == 0 else list(reversed(kinds)):
                for name, query in QUERIES.items():
                    path = f"{ROOT}/studies?{query}"
                    for _ in range(warmup):
                        clients[kind].get(path)
                    for _ in range(iterations):
                        start = time.perf_counter()
                        body = clients[kind].get(path)
                        samples[name][kind].append((time.perf_counter() - start) * 1000)
                    answers[name][kind] = study_uids(json.loads(body))
            log(f"qido round {r + 1}/{rounds} done")
    finally:
        for client in clients.values():
            client.close()
    result: dict[str, Any] = {}
    for name, query in QUERIES.items():
        stats = {k: summarize(v) for k, v in samples[name].items()}
        found = answers[name]
        result[name] = {
            "query": query,
            "latency_ms": stats,
            "matches": {k: len(v) for k, v in found.items()},
            "same_answer": len({tuple(v) for v in found.values()}) <= 1,
            "ratio_p50_obelisk_orthanc": ratio(
                stats.get("obelisk", {}).get("p50"), stats.get("orthanc", {}).get("p50")
            ),
        }
    return result


def measure_wado(
    servers: dict[str, Server], study: str, series: str, rounds: int, repeats: int
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {k: [] for k in servers}
    sizes: dict[str, int] = {}
    path = f"{ROOT}/studies/{study}/series/{series}"
    kinds = list(servers)
    for r in range(rounds):
        for kind in kinds if r % 2 == 0 else list(reversed(kinds)):
            with httpx.Client(base_url=servers[kind].url, timeout=600) as client:
                for _ in range(repeats):
                    start = time.perf_counter()
                    size = 0
                    with client.stream("GET", path, headers=WADO_HEADERS) as response:
                        response.raise_for_status()
                        for chunk in response.iter_raw(1 << 20):
                            size += len(chunk)
                    seconds = time.perf_counter() - start
                    rates[kind].append(size / seconds / 1e6)
                    sizes[kind] = size
        log(f"wado round {r + 1}/{rounds} done")
    medians = {k: round(median(v), 1) for k, v in rates.items()}
    return {
        "path": path,
        "body_bytes": sizes,
        "mb_per_s": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "median_mb_per_s": medians,
        "ratio_obelisk_orthanc": ratio(medians.get("obelisk"), medians.get("orthanc")),
    }


def report(results: dict[str, Any]) -> None:
    for label, queries in results.get("qido", {}).items():
        print(f"\nQIDO-RS GET {ROOT}/studies, index = {label} (latency ms, p50 / p95)")
        rows = []
        for name, data in queries.items():
            lat = data["latency_ms"]

            def cell(kind: str, lat: dict[str, Any] = lat) -> str:
                s = lat.get(kind)
                return f"{s['p50']:.2f} / {s['p95']:.2f}" if s else "-"

            p50_ratio = data["ratio_p50_obelisk_orthanc"]
            rows.append(
                [
                    name,
                    cell("orthanc"),
                    cell("obelisk"),
                    format_ratio(p50_ratio),
                    verdict(p50_ratio, TARGETS["qido_p50"]),
                    "/".join(str(v) for v in data["matches"].values()),
                    "yes" if data["same_answer"] else "NO",
                ]
            )
        print_table(["query", "orthanc", "obelisk", "p50 ratio", "target", "matches", "same"], rows)
    wado = results.get("wado")
    if wado:
        print("\nWADO-RS retrieve of the series (MB/s, median)")
        med = wado["median_mb_per_s"]
        print_table(
            ["orthanc", "obelisk", "obelisk/orthanc", "target"],
            [
                [
                    med.get("orthanc", "-"),
                    med.get("obelisk", "-"),
                    format_ratio(wado["ratio_obelisk_orthanc"]),
                    verdict(wado["ratio_obelisk_orthanc"], TARGETS["wado_mb_s"]),
                ]
            ],
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="DICOMweb benchmark, Obelisk vs Orthanc 1.10.1.")
    parser.add_argument("--servers", default="obelisk,orthanc")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=20, help="per query and round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--wado-repeats", type=int, default=2, help="series retrievals per round")
    parser.add_argument("--quick", action="store_true", help="small sets, 1 round")
    parser.add_argument("--big", action="store_true", help="QIDO again after adding studies")
    parser.add_argument("--big-count", type=int, default=100_000)
    parser.add_argument("--fill-clients", type=int, default=4)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.iterations = 1, min(args.iterations, 5)
        args.big_count = min(args.big_count, 1000)
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    if "orthanc" in kinds and not orthanc_support.orthanc_available():
        log("Orthanc is not installed: skipped")
        kinds.remove("orthanc")
    work = args.work or Path(tempfile.mkdtemp(prefix="obelisk-bench-dicomweb-"))
    started = time.time()
    log("generating the synthetic DICOM sets…")
    if args.quick:
        studies = [i.data for i in synthetic.make_dataset(20, 5, 256, seed="obelisk-bench")]
        volume_set = list(synthetic.make_volume(30, 512, seed="obelisk-bench-volume"))
    else:
        sets = synthetic.benchmark_sets()
        studies = [i.data for i in sets["studies"]]
        volume_set = sets["volume"]
    volume = [i.data for i in volume_set]
    results: dict[str, Any] = {
        "benchmark": "dicomweb",
        "started_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine_info(),
        "servers": kinds,
        "config": {
            "rounds": args.rounds,
            "iterations": args.iterations,
            "wado_repeats": args.wado_repeats,
            "quick": args.quick,
            "big_count": args.big_count if args.big else 0,
            "queries": QUERIES,
            "sets": {"studies": len(studies), "volume": len(volume)},
        },
        "targets": {k: f"{op}{v}" for k, (op, v) in TARGETS.items()},
        "qido": {},
    }
    servers = start_servers(kinds, work)
    try:
        for kind, server in servers.items():
            loaded = upload(server.url, studies + volume, 4)
            log(f"loaded {kind}: {loaded.statuses}")
        label = f"{len(studies) + len(volume)}-instances"
        results["qido"][label] = measure_qido(servers, args.rounds, args.iterations, args.warmup)
        results["wado"] = measure_wado(
            servers, volume_set[0].study_uid, volume_set[0].series_uid, args.rounds,
            args.wado_repeats,
        )  # fmt: skip
        if args.big:
            results["fill"] = fill(servers, args.big_count, args.fill_clients)
            label = f"+{args.big_count}-studies"
            results["qido"][label] = measure_qido(
                servers, args.rounds, args.iterations, args.warmup
            )
    finally:
        for server in servers.values():
            server.stop()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = round(time.time() - started, 1)
    report(results)
    if not args.no_write:
        name = "dicomweb-quick" if args.quick else "dicomweb"
        log(f"results written to {write_results(name, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
