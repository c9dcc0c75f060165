"""Shared pieces of the DICOM network tests: dcmtk by absolute path, a server per module, files."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.server_process import ObeliskProcess, free_port
from tests.support.synthetic import make_dataset, write_files

#: Debian's dcmtk, by path: the virtualenv's bin/ holds pynetdicom's Python tools of the same name.
DCMTK = Path("/usr/bin")
ENV = {**os.environ, "TCP_NODELAY": "1"}
AET = "OBELISK"


def dcmtk(
    tool: str, *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    binary = DCMTK / tool
    if not binary.exists():
        pytest.skip(f"dcmtk's {tool} is not installed")
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout
    )


@pytest.fixture(scope="module")
def dicom_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two studies of three 32x32 CT slices (two patients)."""
    instances = list(make_dataset(2, 3, 32, seed="net", studies_per_patient=1))
    return write_files(instances, tmp_path_factory.mktemp("files"))


def start_server(workdir: Path, config: dict[str, Any]) -> ObeliskProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    return ObeliskProcess(workdir, {"DicomAet": AET, **config}).start()


@pytest.fixture(scope="module")
def peer_port() -> int:
    """Where the test's own storage SCP (AET ``PEER``) listens when one is started."""
    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, peer_port: int) -> Iterator[ObeliskProcess]:
    """One server whose only known modality is ``PEER``; Orthanc's default access rules."""
    process = start_server(
        tmp_path_factory.mktemp("server"),
        {"DicomModalities": {"peer": ["PEER", "127.0.0.1", peer_port]}},
    )
    yield process
    process.stop()
