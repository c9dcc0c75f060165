"""Archive benchmark: ZIP of the 300-slice 512x512 series, Obelisk against Orthanc 1.10.1.

    python bench/archive.py                 # default: 3 rounds, ~3 minutes
    python bench/archive.py --quick         # smoke test of the harness (30 slices, 1 round)

Input: ``volume`` from ``tests/support/synthetic.py`` (one series of 300 CT slices of 512x512,
~158 MB, deterministic), uploaded once to a fresh server of each kind (4 clients).

Measured, per round and server (the order of the servers alternates between rounds):

* ``sync``: ``GET /series/{id}/archive``, from the request to the last byte of the body;
* ``async``: ``POST /series/{id}/archive {"Asynchronous": true}``, polling ``/jobs/{id}`` every
  20 ms until Success, then ``GET /jobs/{id}/archive`` — from the POST to the last byte.
* ``sync-deflate`` (Obelisk only): ``GET /series/{id}/archive?compress``, deflated as Orthanc's
  archives are; its ratio is taken against Orthanc's ``sync``.

Throughput is the size of the DICOM files put in the archive (MB = 10^6 bytes) divided by the
time; medians over the rounds, and the Obelisk/Orthanc ratio (target >= 5x). Every ZIP is opened
and must hold the 300 files. Orthanc deflates its archives; Obelisk stores them by default.

Results go to ``bench/results/archive-<UTC stamp>.json`` (and ``archive-latest.json``).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
import zipfile
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
    upload,
    write_results,
)

TARGET = 5.0
MODES = ("sync", "async", "sync-deflate")


def _download(client: httpx.Client, method: str, path: str, body: Any = None) -> bytes:
    with client.stream(method, path, json=body) as answer:
        answer.raise_for_status()
        return answer.read()


def _async_archive(client: httpx.Client, series: str) -> bytes:
    job = client.post(f"/series/{series}/archive", json={"Asynchronous": True}).json()["ID"]
    while True:
        state = client.get(f"/jobs/{job}").json()["State"]
        if state == "Success":
            return _download(client, "GET", f"/jobs/{job}/archive")
        if state == "Failure":
            raise RuntimeError(f"archive job {job} failed")
        time.sleep(0.02)


def measure(server: Server, series: str, mode: str, expected: int) -> float:
    """Seconds for one archive of ``series`` in ``mode``; checks the ZIP."""
    with httpx.Client(base_url=server.url, timeout=600) as client:
        start = time.perf_counter()
        if mode == "sync":
            data = _download(client, "GET", f"/series/{series}/archive")
        elif mode == "sync-deflate":
            data = _download(client, "GET", f"/series/{series}/archive?compress")
        else:
            data = _async_archive(client, series)
        seconds = time.perf_counter() - start
    count = len(zipfile.ZipFile(io.BytesIO(data)).namelist())
    if count != expected:
        raise RuntimeError(f"{server.kind} {mode}: {count} files in the ZIP, {expected} expected")
    return seconds


def run(kinds: list[str], files: list[bytes], rounds: int, work: Path) -> dict[str, Any]:
    megabytes = sum(map(len, files)) / 1e6
    servers: dict[str, Server] = {}
    series: dict[str, str] = {}
    samples: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
    try:
        for kind in kinds:
            servers[kind] = start_server(kind, work, "archive")
            result = upload(servers[kind].url, files, 4)
            if result.statuses.get("Success", 0) != len(files):
                raise RuntimeError(f"{kind}: upload failed: {result.statuses}")
            series[kind] = httpx.get(f"{servers[kind].url}/series").json()[0]
            log(f"{kind}: {len(files)} files uploaded in {result.seconds:.1f}s")
        for r in range(rounds):
            order = kinds if r % 2 == 0 else list(reversed(kinds))
            for kind in order:
                for mode in MODES:
                    if mode == "sync-deflate" and kind != "obelisk":
                        continue
                    seconds = measure(servers[kind], series[kind], mode, len(files))
                    rate = megabytes / seconds
                    samples[mode].setdefault(kind, []).append(round(rate, 1))
                    log(f"round {r + 1}/{rounds} {kind:7} {mode:12} {rate:8.1f} MB/s")
    finally:
        for server in servers.values():
            server.stop()
    summary: dict[str, Any] = {}
    for mode, by_kind in samples.items():
        medians = {kind: round(median(values), 1) for kind, values in by_kind.items()}
        summary[mode] = {
            "runs_mb_per_s": by_kind,
            "median_mb_per_s": medians,
            "ratio_obelisk_orthanc": ratio(medians.get("obelisk"), medians.get("orthanc")),
        }
    # Both deflate: Obelisk's optional deflate against Orthanc's (always deflated) sync archive.
    summary["sync-deflate"]["ratio_obelisk_orthanc"] = ratio(
        summary["sync-deflate"]["median_mb_per_s"].get("obelisk"),
        summary["sync"]["median_mb_per_s"].get("orthanc"),
    )
    return {"input_mb": round(megabytes, 1), "results": summary}


def report(results: dict[str, Any]) -> None:
    print(f"\nArchive of {results['config']['slices']} slices ({results['input_mb']} MB), "
          f"medians of {results['config']['rounds']} rounds, MB/s of DICOM data")  # fmt: skip
    rows = []
    for mode, data in results["results"].items():
        medians = data["median_mb_per_s"]
        rows.append(
            [
                mode,
                medians.get("obelisk", "-"),
                medians.get("orthanc", "-"),
                format_ratio(
                    data["ratio_obelisk_orthanc"],
                    "same compression" if mode == "sync-deflate" else f"target >= {TARGET:g}x",
                ),
            ]
        )
    print_table(["mode", "obelisk", "orthanc", "ratio"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Archive benchmark, Obelisk vs Orthanc 1.10.1.")
    parser.add_argument("--servers", default="obelisk,orthanc", help="comma-separated kinds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="30 slices, 1 round (smoke test)")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: tmp)")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    slices = 30 if args.quick else 300
    rounds = 1 if args.quick else args.rounds

    work = args.work or Path(tempfile.mkdtemp(prefix="obelisk-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        kinds = available_servers([k.strip() for k in args.servers.split(",") if k.strip()], work)
        if not kinds:
            print("no server available", file=sys.stderr)
            return 2
        log(f"servers: {', '.join(kinds)}; generating {slices} slices of 512x512…")
        volume = synthetic.make_volume(slices, 512, seed="obelisk-bench-volume")
        files = [instance.data for instance in volume]
        results: dict[str, Any] = {
            "benchmark": "archive",
            "started_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "machine": machine_info(),
            "servers": kinds,
            "config": {"rounds": rounds, "slices": slices, "size": 512, "modes": MODES},
            "target": f">={TARGET:g}x",
            **run(kinds, files, rounds, work),
        }
        results["duration_s"] = round(time.time() - started, 1)
        report(results)
        if not args.no_write:
            path = write_results("archive" + ("-quick" if args.quick else ""), results)
            print(f"\nresults: {path}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
