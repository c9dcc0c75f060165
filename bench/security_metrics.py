"""The cost of access control and the price of a metrics scrape, against Orthanc 1.10.1.

    python bench/security_metrics.py            # full: 20,000 requests per case, 300 scrapes
    python bench/security_metrics.py --quick    # smoke test

Cases for ``GET /system`` throughput (4 keep-alive clients):

* ``obelisk open``: no authentication (loopback).
* ``obelisk basic``: HTTP Basic + a permissions file (the user is in ``read-only``).
* ``obelisk bearer``: the same server, ``Authorization: Bearer``.
* ``orthanc open``: Orthanc 1.10.1, no authentication (its test starter cannot log in).

Then ``GET /tools/metrics-prometheus`` latency (sequential) on both servers holding the same
instances. Results go to ``bench/results/security_metrics-*.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # bench/common.py and tests/

from tests.dicom_factory import make_series  # noqa: E402

from common import (  # noqa: E402
    COMMON_CONFIG,
    Server,
    log,
    machine_info,
    print_table,
    start_obelisk,
    start_orthanc,
    summarize,
    upload,
    write_results,
)

CLIENTS = 4
TOKEN = "bench-token-0123456789"


def throughput(url: str, total: int, headers: dict[str, str]) -> float:
    """Requests per second of ``GET /system`` spread over :data:`CLIENTS` clients."""
    per_client = total // CLIENTS
    failures: list[int] = []

    def worker() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            for _ in range(per_client):
                status = client.get("/system").status_code
                if status != 200:
                    failures.append(status)

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests, e.g. HTTP {failures[0]}")
    return per_client * CLIENTS / elapsed


def scrape_latencies(server: Server, count: int) -> list[float]:
    """Milliseconds of sequential ``GET /tools/metrics-prometheus`` (after 10 warm-ups)."""
    samples: list[float] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for index in range(count + 10):
            started = time.perf_counter()
            client.get("/tools/metrics-prometheus").raise_for_status()
            if index >= 10:
                samples.append((time.perf_counter() - started) * 1000)
    return samples


def secured_config(directory: Path) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    permissions = directory / "permissions.json"
    permissions.write_text(json.dumps({"Users": {"alice": ["read-only"], "scraper": "read-only"}}))
    return {
        **COMMON_CONFIG,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {"alice": "secret"},
        "Obelisk": {"BearerTokens": {"scraper": TOKEN}, "PermissionsFile": str(permissions)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    requests, scrapes, instances = (2_000, 30, 50) if args.quick else (20_000, 300, 500)
    files = make_series(instances)
    basic = httpx.BasicAuth("alice", "secret")._auth_header
    results: dict[str, Any] = {"machine": machine_info(), "requests": requests, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="obelisk-bench-security-") as work:
        root = Path(work)
        servers: list[Server] = []
        try:
            log("starting servers")
            open_obelisk = start_obelisk(root / "open", COMMON_CONFIG)
            servers.append(open_obelisk)
            secured = start_obelisk(root / "secured", secured_config(root / "secured"))
            servers.append(secured)
            orthanc = start_orthanc(root / "orthanc", COMMON_CONFIG)
            servers.append(orthanc)
            cases = [
                ("obelisk open", open_obelisk.url, {}),
                ("obelisk basic", secured.url, {"Authorization": basic}),
                ("obelisk bearer", secured.url, {"Authorization": f"Bearer {TOKEN}"}),
                ("orthanc open", orthanc.url, {}),
            ]
            for name, url, headers in cases:
                throughput(url, requests // 10, headers)  # warm-up
                rate = throughput(url, requests, headers)
                results["cases"][name] = {"system_req_per_s": round(rate)}
                log(f"{name}: {rate:,.0f} req/s")
            for server, name in ((open_obelisk, "obelisk open"), (orthanc, "orthanc open")):
                upload(server.url, files, CLIENTS)
                results["cases"][name]["scrape_ms"] = summarize(scrape_latencies(server, scrapes))
        finally:
            for server in servers:
                server.stop()
    rows = []
    for name, case in results["cases"].items():
        scrape = case.get("scrape_ms", {})
        rows.append([name, f"{case['system_req_per_s']:,}", scrape.get("p50", "-")])
    print_table(["case", "GET /system req/s", "scrape p50 ms"], rows)
    print(write_results("security_metrics", results))


if __name__ == "__main__":
    main()
