"""Image rendering benchmark: Obelisk against Orthanc 1.10.1 (+ DICOMweb plugin) on this machine.

    python bench/pixels.py                 # 512x512 CT, native and RLE, 30 requests per route
    python bench/pixels.py --quick         # smoke test of the harness

One 512x512 16-bit CT instance (``tests/support/synthetic.py``), stored once as explicit VR little
endian and once RLE-compressed, is uploaded to both servers. Then, in alternating rounds, one
sequential keep-alive client times each route (after 2 warm-up requests):
``/instances/{id}/preview`` (PNG), ``/rendered`` (PNG), ``/rendered?width=128`` with
``Accept: image/jpeg``, ``/frames/0/raw``, and DICOMweb ``…/instances/{sop}/rendered`` (JPEG).
Reports p50/p95 in ms and the Obelisk/Orthanc ratio. Results go to
``bench/results/pixels-<UTC stamp>.json``.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pydicom
from pydicom.uid import RLELossless

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # bench/common.py and tests/support/

from tests.support import orthanc as orthanc_support  # noqa: E402
from tests.support import synthetic  # noqa: E402

from common import (  # noqa: E402
    COMMON_CONFIG,
    format_ratio,
    log,
    machine_info,
    print_table,
    ratio,
    start_obelisk,
    start_orthanc,
    summarize,
    write_results,
)

ORTHANC_DICOMWEB = {
    "Plugins": [str(orthanc_support.DICOMWEB_PLUGIN)],
    "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
}
STUDY, SERIES = synthetic.uid("pixels-bench", "study"), synthetic.uid("pixels-bench", "series")


def _instances() -> dict[str, tuple[str, bytes]]:
    """{label: (SOPInstanceUID, file)} for the native and the RLE copy."""
    files = {}
    for label in ("native", "rle"):
        sop = synthetic.uid("pixels-bench", label)
        data = synthetic.make_ct_instance(
            "PIXELS", "BENCH^PIXELS", STUDY, SERIES, sop, 1 if label == "native" else 2, 512, 512
        )
        if label == "rle":
            ds = pydicom.dcmread(io.BytesIO(data))
            ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            data = buffer.getvalue()
        files[label] = (sop, data)
    return files


def _routes(orthanc_id: str, sop: str) -> dict[str, tuple[str, dict[str, str]]]:
    instance = f"/instances/{orthanc_id}"
    dicomweb = f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{sop}/rendered"
    return {
        "preview png": (f"{instance}/preview", {}),
        "rendered png": (f"{instance}/rendered", {}),
        "rendered jpeg w=128": (f"{instance}/rendered?width=128", {"Accept": "image/jpeg"}),
        "raw frame": (f"{instance}/frames/0/raw", {}),
        "dicomweb rendered": (dicomweb, {"Accept": "image/jpeg"}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    iterations, rounds = (3, 1) if args.quick else (args.iterations, args.rounds)
    files = _instances()
    samples: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="obelisk-bench-pixels-") as work:
        servers = {
            "obelisk": start_obelisk(Path(work) / "obelisk", COMMON_CONFIG),
            "orthanc": start_orthanc(Path(work) / "orthanc", {**COMMON_CONFIG, **ORTHANC_DICOMWEB}),
        }
        try:
            ids: dict[tuple[str, str], str] = {}
            for kind, server in servers.items():
                for label, (_, data) in files.items():
                    answer = httpx.post(f"{server.url}/instances", content=data, timeout=60)
                    ids[kind, label] = answer.raise_for_status().json()["ID"]
            for round_number in range(rounds):
                log(f"round {round_number + 1}/{rounds}")
                for kind, server in servers.items():
                    with httpx.Client(base_url=server.url, timeout=60) as client:
                        for label, (sop, _) in files.items():
                            for route, (path, headers) in _routes(ids[kind, label], sop).items():
                                client.headers.clear()
                                client.headers.update(headers)
                                taken = _timed(client, path, iterations)
                                samples.setdefault((label, route, kind), []).extend(taken)
        finally:
            for server in servers.values():
                server.stop()
    rows = []
    results: dict[str, Any] = {"machine": machine_info(), "iterations": iterations, "routes": {}}
    for label in files:
        for route in _routes("x", "x"):
            ours = summarize(samples[label, route, "obelisk"])
            theirs = summarize(samples[label, route, "orthanc"])
            results["routes"][f"{label} {route}"] = {"obelisk": ours, "orthanc": theirs}
            speed = ratio(ours["p50"], theirs["p50"])
            rows.append([label, route, ours["p50"], theirs["p50"], format_ratio(speed)])
    print_table(["file", "route", "Obelisk p50 ms", "Orthanc p50 ms", "ratio"], rows)
    log(f"results: {write_results('pixels', results)}")


def _timed(client: httpx.Client, path: str, iterations: int) -> list[float]:
    """Latencies in ms of ``iterations`` sequential GETs after 2 warm-up ones (binary answers)."""
    for _ in range(2):
        client.get(path).raise_for_status()
    taken = []
    for _ in range(iterations):
        start = time.perf_counter()
        client.get(path).raise_for_status()
        taken.append((time.perf_counter() - start) * 1000.0)
    return taken


if __name__ == "__main__":
    main()
