"""A throw-away real Orthanc 1.10.1 (the Debian package) on free loopback ports.

    with running_orthanc(tmp_path, with_dicomweb=True) as orthanc:
        httpx.get(f"{orthanc.url}/system")

Nothing here touches a system Orthanc service: each process gets its own configuration,
storage and index directories under ``tmpdir``, its own ports (never 8042/4242), and is stopped
(SIGTERM, then SIGKILL) by the context manager that started it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORTHANC_BINARY = Path(os.environ.get("ORTHANC_BINARY", "/usr/sbin/Orthanc"))
PLUGINS_DIRECTORY = Path("/usr/share/orthanc/plugins")
DICOMWEB_PLUGIN = PLUGINS_DIRECTORY / "libOrthancDicomWeb.so"
RESERVED_PORTS = frozenset({8042, 4242})


class OrthancStartError(RuntimeError):
    """Orthanc exited or did not answer ``/system`` in time (the log tail is in the message)."""


def orthanc_available() -> bool:
    """True when the Orthanc binary is installed and runnable."""
    if not ORTHANC_BINARY.is_file() or not os.access(ORTHANC_BINARY, os.X_OK):
        return False
    try:
        out = subprocess.run(
            [str(ORTHANC_BINARY), "--version"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "Orthanc" in out.stdout


def orthanc_version() -> str | None:
    """``"1.10.1"`` for the Debian 12 package, or None when Orthanc is not installed."""
    if not orthanc_available():
        return None
    out = subprocess.run([str(ORTHANC_BINARY), "--version"], capture_output=True, text=True)
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.rsplit(" ", 1)[-1] or None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (never 8042 or 4242)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in RESERVED_PORTS:
            return port


@dataclass
class OrthancProcess:
    """A running Orthanc: where to reach it and where its files are."""

    url: str
    http_port: int
    dicom_port: int
    aet: str
    directory: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def storage_directory(self) -> Path:
        return self.directory / "storage"

    @property
    def pid(self) -> int:
        return self.process.pid


def write_config(
    directory: Path,
    http_port: int,
    dicom_port: int,
    *,
    aet: str = "ORTHANC",
    with_dicomweb: bool = False,
    extra_config: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``config.json`` for an isolated Orthanc in ``directory``; returns its path."""
    storage = directory / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "Name": f"orthanc-{http_port}",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
        "SaveJobs": False,
        "Plugins": [],
    }
    if with_dicomweb:
        config["Plugins"] = [str(DICOMWEB_PLUGIN)]
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
    config.update(extra_config or {})
    path = directory / "config.json"
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def _get_system(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/system", timeout=2) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_orthanc(
    tmpdir: Path | str,
    extra_config: Mapping[str, Any] | None = None,
    *,
    with_dicomweb: bool = False,
    aet: str = "ORTHANC",
    timeout: float = 60.0,
    verbose: bool = False,
    env: Mapping[str, str] | None = None,
) -> OrthancProcess:
    """Start an Orthanc in ``tmpdir``; the caller must call :func:`stop_orthanc`."""
    if not orthanc_available():
        raise OrthancStartError(f"{ORTHANC_BINARY} is not installed")
    directory = Path(tmpdir)
    directory.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _attempt in range(3):  # a port may be taken between free_port() and Orthanc's bind
        http_port, dicom_port = free_port(), free_port()
        while dicom_port == http_port:
            dicom_port = free_port()
        config_path = write_config(
            directory,
            http_port,
            dicom_port,
            aet=aet,
            with_dicomweb=with_dicomweb,
            extra_config=extra_config,
        )
        log_path = directory / "orthanc.log"
        process_env = dict(os.environ, TCP_NODELAY="1", **(env or {}))
        args = [str(ORTHANC_BINARY), str(config_path)]
        if verbose:
            args.insert(1, "--verbose")
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                args,
                cwd=directory,
                env=process_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{http_port}"
        running = OrthancProcess(
            url, http_port, dicom_port, aet, directory, config_path, log_path, process
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            system = _get_system(url)
            if system is not None and system.get("HttpPort") == http_port:
                return running
            time.sleep(0.05)
        last_error = _log_tail(log_path)
        stop_orthanc(running)
    raise OrthancStartError(f"Orthanc did not start; log tail:\n{last_error}")


def stop_orthanc(orthanc: OrthancProcess, timeout: float = 30.0) -> None:
    """SIGTERM the process this module started (and only it), then SIGKILL after ``timeout``."""
    process = orthanc.process
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def running_orthanc(
    tmpdir: Path | str,
    extra_config: Mapping[str, Any] | None = None,
    *,
    with_dicomweb: bool = False,
    aet: str = "ORTHANC",
    timeout: float = 60.0,
    keep_files: bool = True,
    env: Mapping[str, str] | None = None,
) -> Iterator[OrthancProcess]:
    """Run an isolated Orthanc for the ``with`` block; see the module docstring.

    ``extra_config`` is merged over the generated configuration (e.g. ``{"StableAge": 1}``).
    ``env`` adds environment variables (``TCP_NODELAY=1`` is always set). With
    ``keep_files=False`` the storage directory is removed after the process stops.
    """
    orthanc = start_orthanc(
        tmpdir, extra_config, with_dicomweb=with_dicomweb, aet=aet, timeout=timeout, env=env
    )
    try:
        yield orthanc
    finally:
        stop_orthanc(orthanc)
        if not keep_files:
            shutil.rmtree(orthanc.storage_directory, ignore_errors=True)
