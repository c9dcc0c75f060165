"""Shared pieces of the benchmarks: servers on free loopback ports, load drivers, statistics.

Servers:

* :func:`start_obelisk` runs ``python -m obelisk serve --config FILE`` with an Orthanc-style
  configuration (``StorageDirectory``, ``HttpPort``, ``DicomPort``, ``RemoteAccessAllowed``…)
  in a fresh directory and waits for ``GET /system``.
* :func:`start_orthanc` runs the Debian Orthanc 1.10.1 through ``tests/support/orthanc.py``.

Both give a :class:`Server`; :meth:`Server.stop` stops only the process it started.
Only 127.0.0.1 is ever contacted, and never ports 8042/4242.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import orthanc as orthanc_support  # noqa: E402

RESULTS_DIRECTORY = ROOT / "bench" / "results"
DICOM_HEADERS = {"Content-Type": "application/dicom"}


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A server process started by this module, reachable at ``url``."""

    kind: str  # "obelisk" | "orthanc"
    url: str
    http_port: int
    dicom_port: int
    directory: Path
    log_path: Path
    _stop: Callable[[], None] = field(repr=False)

    def stop(self, *, remove_files: bool = False) -> None:
        """Stops the server. Its files stay until the benchmark's work folder is removed at the
        end: deleting thousands of files between runs slows the next runs' file creation on
        this machine's ext4 (the inode allocator walks past recently freed inodes for minutes;
        15–27 % of both servers' CPU in ``perf``), which blurs the comparison."""
        self._stop()
        if remove_files:
            shutil.rmtree(self.directory, ignore_errors=True)

    def system(self) -> dict[str, Any]:
        answer: dict[str, Any] = get_json(f"{self.url}/system")
        return answer

    def count_instances(self) -> int:
        return int(get_json(f"{self.url}/statistics")["CountInstances"])


def get_json(url: str, timeout: float = 30) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


def _wait_for_system(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            get_json(f"{url}/system", timeout=2)
            return True
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # up, with authentication on
                return True
            time.sleep(0.1)
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.1)
    return False


def _terminate(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def obelisk_installed() -> bool:
    """True when ``python -m obelisk`` can be imported (not whether it serves yet)."""
    try:
        return importlib.util.find_spec("obelisk.__main__") is not None
    except (ImportError, ValueError):
        return False


class ServerStartError(RuntimeError):
    pass


def start_obelisk(
    directory: Path, extra_config: Mapping[str, Any] | None = None, timeout: float = 60
) -> Server:
    """Start Obelisk in ``directory`` on free ports; raises :class:`ServerStartError`."""
    directory.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = orthanc_support.free_port(), orthanc_support.free_port()
    storage = directory / "storage"
    config: dict[str, Any] = {
        "Name": "obelisk-bench",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        **(extra_config or {}),
    }
    config_path = directory / "config.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    log_path = directory / "obelisk.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "obelisk", "serve", "--config", str(config_path)],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    url = f"http://127.0.0.1:{http_port}"
    if not _wait_for_system(url, process, timeout):
        _terminate(process)
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise ServerStartError(f"Obelisk did not answer /system; log tail:\n{tail}")
    return Server(
        "obelisk", url, http_port, dicom_port, directory, log_path, lambda: _terminate(process)
    )


def start_orthanc(directory: Path, extra_config: Mapping[str, Any] | None = None) -> Server:
    """Start the Debian Orthanc 1.10.1 in ``directory`` on free ports."""
    running = orthanc_support.start_orthanc(directory, extra_config)
    return Server(
        "orthanc",
        running.url,
        running.http_port,
        running.dicom_port,
        directory,
        running.log_path,
        lambda: orthanc_support.stop_orthanc(running),
    )


#: Configuration given to both servers so that they do the same work.
COMMON_CONFIG: dict[str, Any] = {
    "StableAge": 60,
    "StorageCompression": False,
    "OverwriteInstances": False,
}

STARTERS: dict[str, Callable[[Path, Mapping[str, Any] | None], Server]] = {
    "obelisk": start_obelisk,
    "orthanc": start_orthanc,
}


def start_server(kind: str, work: Path, label: str) -> Server:
    directory = work / f"{kind}-{label}"
    shutil.rmtree(directory, ignore_errors=True)
    return STARTERS[kind](directory, COMMON_CONFIG)


def available_servers(requested: Iterable[str], work: Path) -> list[str]:
    """The requested kinds that start here (each is tried once and stopped)."""
    kinds: list[str] = []
    for kind in requested:
        if kind == "orthanc" and not orthanc_support.orthanc_available():
            print("! Orthanc is not installed: skipped", file=sys.stderr)
            continue
        if kind == "obelisk" and not obelisk_installed():
            print("! obelisk is not importable (pip install -e .): skipped", file=sys.stderr)
            continue
        try:
            server = start_server(kind, work, "probe")
        except (ServerStartError, orthanc_support.OrthancStartError) as exc:
            print(f"! {kind} does not start, skipped:\n{exc}", file=sys.stderr)
            continue
        server.stop()
        kinds.append(kind)
    return kinds


# --------------------------------------------------------------------------- load


@dataclass
class UploadResult:
    seconds: float
    count: int
    statuses: dict[str, int]
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def upload(
    url: str | Sequence[str],
    files: Sequence[bytes],
    clients: int,
    *,
    progress: Callable[[int], None] | None = None,
    timeout: float = 300,
) -> UploadResult:
    """POST every file to ``{url}/instances`` with ``clients`` concurrent keep-alive clients.

    With several URLs, client ``n`` sends to ``url[n % len(url)]`` (files are taken from one
    shared list, so the servers receive about equal shares)."""
    urls = [url] if isinstance(url, str) else list(url)
    lock = threading.Lock()
    next_index = 0
    statuses: dict[str, int] = {}
    errors: list[str] = []

    def worker(base_url: str) -> None:
        nonlocal next_index
        with httpx.Client(base_url=base_url, timeout=timeout, headers=DICOM_HEADERS) as client:
            while True:
                with lock:
                    index = next_index
                    next_index += 1
                if index >= len(files):
                    return
                try:
                    answer = client.post("/instances", content=files[index])
                    key = (
                        str(answer.json().get("Status"))
                        if answer.status_code == 200
                        else f"HTTP {answer.status_code}"
                    )
                except (httpx.HTTPError, ValueError) as exc:
                    key = type(exc).__name__
                    with lock:
                        errors.append(f"{index}: {exc}")
                with lock:
                    statuses[key] = statuses.get(key, 0) + 1
                    if key != "Success" and len(errors) < 20:
                        errors.append(f"{index}: {key}")
                if progress is not None and index % 1000 == 0:
                    progress(index)

    threads = [
        threading.Thread(target=worker, args=(urls[n % len(urls)],), daemon=True)
        for n in range(clients)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return UploadResult(time.perf_counter() - start, len(files), statuses, errors)


def time_requests(
    client: httpx.Client, method: str, path: str, body: Any, iterations: int, warmup: int
) -> tuple[list[float], Any]:
    """Latencies in milliseconds of ``iterations`` sequential requests (after ``warmup``)."""
    content = json.dumps(body) if body is not None else None
    answer: Any = None
    for _ in range(warmup):
        client.request(method, path, content=content).raise_for_status()
    samples: list[float] = []
    for _ in range(iterations):
        start = time.perf_counter()
        response = client.request(method, path, content=content)
        samples.append((time.perf_counter() - start) * 1000.0)
        response.raise_for_status()
        answer = response
    return samples, (answer.json() if answer is not None else None)


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (``p`` in 0..100), like numpy's default."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": round(percentile(samples, 50), 3),
        "p95": round(percentile(samples, 95), 3),
        "min": round(min(samples), 3) if samples else float("nan"),
        "max": round(max(samples), 3) if samples else float("nan"),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, 3)


def format_ratio(value: float | None, target: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" + (f" ({target})" if target else "")


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A plain fixed-width table on stdout."""
    materialised = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in materialised:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in materialised:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)))


# --------------------------------------------------------------------------- results


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "orthanc_version": orthanc_support.orthanc_version(),
    }
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        info["obelisk_commit"] = commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def write_results(name: str, data: Mapping[str, Any], directory: Path = RESULTS_DIRECTORY) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    latest = directory / f"{name}-latest.json"
    latest.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
