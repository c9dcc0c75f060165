"""Starts the real server as a subprocess on free loopback ports, for integration tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ObeliskProcess:
    """One ``obelisk serve`` process; ``start`` waits until ``/system`` answers."""

    def __init__(self, workdir: Path, config: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.http_port = free_port()
        self.config: dict[str, Any] = {
            "HttpPort": self.http_port,
            "DicomPort": free_port(),
            "StorageDirectory": str(workdir / "storage"),
            "StableAge": 2,
            **(config or {}),
        }
        self.config_path = workdir / "orthanc.json"
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, *extra_args: str, timeout: float = 30) -> ObeliskProcess:
        self.config_path.write_text(json.dumps(self.config))
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process owns it
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "obelisk",
                "serve",
                "--config",
                str(self.config_path),
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/system", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ObeliskProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
