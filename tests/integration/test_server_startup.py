"""Starting the real server: configuration files, ports, defaults, and the CLI."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.dicom_factory import make_series
from tests.integration.server_process import ObeliskProcess, free_port


def _run_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obelisk", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_orthanc_config_with_comments_and_unknown_keys(
    obelisk_factory: Callable[..., ObeliskProcess],
) -> None:
    server = obelisk_factory({"Name": "MyObelisk", "SomePluginSection": {"x": 1}})
    server.start()
    assert httpx.get(f"{server.url}/system").json()["Name"] == "MyObelisk"
    server.stop()
    assert 'Unknown configuration option "SomePluginSection"' in server.log_path.read_text()


def test_config_file_comments_are_accepted(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "orthanc.json"
    config.write_text(
        '{\n  // the name\n  "Name": "Commented", /* block */ "HttpPort": PORT,\n'
        '  "StorageDirectory": "store", "Url": "http://x//y"\n}'.replace("PORT", str(port))
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "obelisk", "serve", "--config", str(config)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if b"OBELISK READY" in line:
                break
        assert httpx.get(f"http://127.0.0.1:{port}/system").json()["Name"] == "Commented"
        assert (tmp_path / "store" / "index.db").exists()  # relative to the config file
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_wrong_type_is_a_clear_startup_error(tmp_path: Path) -> None:
    config = tmp_path / "orthanc.json"
    config.write_text(json.dumps({"HttpPort": "not a number"}))
    result = _run_cli("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "HttpPort" in result.stderr


def test_busy_port_is_a_clear_error_unless_auto_increment(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = _run_cli("serve", "--http-port", str(port), "--storage", "s", cwd=tmp_path)
        assert result.returncode == 2
        assert f"port {port}" in result.stderr and "already in use" in result.stderr

        config = tmp_path / "auto.json"
        config.write_text(
            json.dumps(
                {
                    "HttpPort": port,
                    "DicomPort": 0,  # any free port: tests never take 4242
                    "StorageDirectory": "s2",
                    "Obelisk": {"PortAutoIncrement": True},
                }
            )
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "obelisk", "serve", "--config", str(config)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            assert process.stdout is not None
            ready = ""
            for raw in process.stdout:
                line = raw.decode()
                if "OBELISK READY" in line:
                    ready = line
                    break
            match = re.search(r"http=(\d+)", ready)
            assert match, ready
            actual = int(match.group(1))
            assert actual != port
            assert httpx.get(f"http://127.0.0.1:{actual}/system").status_code == 200
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_no_config_stores_under_obelisk_data(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "obelisk", "serve", "--http-port", str(port), "--dicom-port", str(free_port())),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if b"OBELISK READY" in line:
                break
        data = make_series(1)[0]
        assert httpx.post(f"http://127.0.0.1:{port}/instances", content=data).status_code == 200
        assert (tmp_path / "obelisk-data" / "index.db").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_upload_and_find(obelisk: ObeliskProcess, tmp_path: Path) -> None:
    folder = tmp_path / "upload"
    folder.mkdir()
    files = make_series(4)
    for n, data in enumerate(files[:2]):
        (folder / f"{n}.dcm").write_bytes(data)
    (folder / "notes.txt").write_text("not DICOM")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n, data in enumerate(files[1:]):
            archive.writestr(f"{n}.dcm", data)
    (folder / "more.zip").write_bytes(buffer.getvalue())

    result = _run_cli("upload", str(folder), "--url", obelisk.url, cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # one file was rejected
    summary = result.stderr
    assert "stored" in summary and "already stored" in summary
    assert "notes.txt" in summary
    assert len(httpx.get(f"{obelisk.url}/instances").json()) == 4

    found = _run_cli("find", "PatientName=doe*", "--url", obelisk.url, cwd=tmp_path)
    assert found.returncode == 0
    assert len(json.loads(found.stdout)) == 1
