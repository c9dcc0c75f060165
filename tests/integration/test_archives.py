"""Archives from the real server: streamed ZIP and the asynchronous job, byte-identical files."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import httpx

from tests.integration.server_process import ObeliskProcess

INPUTS = Path(__file__).resolve().parents[1] / "fixtures" / "orthanc" / "inputs"
PATIENT = "dc3a2358-d3d6ff77-c0e3b3ed-ce1256f5-c8779d84"


def _upload(client: httpx.Client) -> dict[str, bytes]:
    stored = {}
    for path in sorted(INPUTS.glob("*.dcm")):
        answer = client.post("/instances", content=path.read_bytes()).json()
        stored[answer["ID"]] = path.read_bytes()
    return stored


def _wait(client: httpx.Client, path: str) -> dict[str, object]:
    for _ in range(200):
        info: dict[str, object] = client.get(path).json()
        if info["State"] in ("Success", "Failure"):
            return info
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_archives(obelisk: ObeliskProcess, tmp_path: Path) -> None:
    with httpx.Client(base_url=obelisk.url, timeout=30) as client:
        stored = _upload(client)
        files = set(stored.values())
        with client.stream("GET", f"/patients/{PATIENT}/archive") as answer:
            assert answer.headers["content-type"] == "application/zip"
            content = b"".join(answer.iter_bytes())
        archive = zipfile.ZipFile(io.BytesIO(content))
        assert len(archive.namelist()) == 6
        assert all(archive.read(name) in files for name in archive.namelist())

        job = client.post(f"/patients/{PATIENT}/media", json={"Asynchronous": True}).json()
        info = _wait(client, job["Path"])
        assert info["State"] == "Success" and info["Type"] == "Media"
        media = client.get(f"{job['Path']}/archive")
        assert media.headers["content-type"] == "application/zip"
        zipfile.ZipFile(io.BytesIO(media.content)).extractall(tmp_path)
        assert all((tmp_path / "IMAGES" / f"IM{n}").read_bytes() in files for n in range(6))
        if shutil.which("dcmdump"):
            dump = subprocess.run(
                ["dcmdump", str(tmp_path / "DICOMDIR")], capture_output=True, text=True
            )
            assert dump.returncode == 0 and dump.stdout.count("ReferencedFileID") == 6
