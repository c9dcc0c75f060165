"""Archives and media: layout, byte-identical files, DICOMDIR, the resumable job."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.fileset import FileSet
from starlette.testclient import TestClient

from obelisk.services import archives
from obelisk.services.archives import (
    ArchiveJob,
    ArchiveOptions,
    keep_alphanumeric,
    plan_archive,
)
from obelisk.services.context import Services

PATIENT = "dc3a2358-d3d6ff77-c0e3b3ed-ce1256f5-c8779d84"
STUDY = "64a773d7-f879e338-2af4417d-1d10b99c-69c0fb8a"
Loaded = tuple[Services, TestClient]


def test_names_as_orthanc() -> None:
    assert keep_alphanumeric("    ÊtrE hellô  ") == "trE hell"
    assert keep_alphanumeric("    Hel^^  ^\r\n\t^^lo  \t  <world>  ") == "Hel lo world"


def _stored(services: Services, instance: str) -> bytes:
    return services.resources.dicom_bytes(instance)


def _check_identical(services: Services, content: bytes, entries: list[Any]) -> None:
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None
    for entry in entries:
        assert archive.read(entry.path) == _stored(services, entry.instance_id)


@pytest.mark.parametrize("query", ["", "?compress"])
def test_streamed_archive_is_byte_identical(loaded: Loaded, query: str) -> None:
    services, client = loaded
    answer = client.get(f"/patients/{PATIENT}/archive{query}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["content-disposition"] == f'filename="{PATIENT}.zip"'
    entries = plan_archive(services, [PATIENT], media=False)
    _check_identical(services, answer.content, entries)
    methods = {i.compress_type for i in zipfile.ZipFile(io.BytesIO(answer.content)).infolist()}
    assert methods == ({zipfile.ZIP_DEFLATED} if query else {zipfile.ZIP_STORED})


def test_create_archive_of_several_resources(loaded: Loaded) -> None:
    _, client = loaded
    other_series = "bf38a047-d091fa31-dc4d452a-75f282cd-f61ba851"  # P002, 2 instances
    instance = client.get(f"/series/{other_series}").json()["Instances"][0]
    answer = client.post("/tools/create-archive", json={"Resources": [STUDY, instance]})
    assert answer.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(answer.content)).namelist()
    assert len(names) == 4
    bad = client.post("/tools/create-archive", json={"Resources": ["nope"]})
    assert bad.status_code == 404
    assert client.get("/instances/x/archive").status_code in (404, 405)


def test_media_dicomdir_is_readable(loaded: Loaded, tmp_path: Path) -> None:
    _, client = loaded
    answer = client.post(f"/patients/{PATIENT}/media", content=b"")
    assert answer.status_code == 200
    zipfile.ZipFile(io.BytesIO(answer.content)).extractall(tmp_path)
    fileset = FileSet(pydicom.dcmread(tmp_path / "DICOMDIR"))
    assert len(fileset) == 6
    uids = sorted(i.SOPInstanceUID for i in fileset)
    stored = sorted(
        str(pydicom.dcmread(tmp_path / "IMAGES" / f"IM{n}").SOPInstanceUID) for n in range(6)
    )
    assert uids == stored
    for instance in fileset:
        assert Path(instance.path).exists()
    if shutil.which("dcmdump"):
        out = subprocess.run(
            ["dcmdump", str(tmp_path / "DICOMDIR")], capture_output=True, text=True, check=True
        )
        assert out.stdout.count('"Directory Record" IMAGE') == 6
        assert "E:" not in out.stderr


class _Context:
    def __init__(self, path: Path) -> None:
        self.output_dir = path

    def log(self, message: str) -> None:
        return None


@pytest.mark.parametrize("media", [False, True])
def test_job_resumes_from_its_snapshot(
    loaded: Loaded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, media: bool
) -> None:
    services, _ = loaded
    monkeypatch.setattr(archives, "STEP_SECONDS", 0.0)  # one file per step
    entries = plan_archive(services, [PATIENT], media=media)
    job = ArchiveJob.create(services, entries, ArchiveOptions(media=media))
    context = _Context(tmp_path)
    job.step(context)
    job.step(context)
    snapshot = job.serialize()
    # a crash after more steps than the snapshot knows: garbage at the end of the file
    with open(tmp_path / "archive.zip", "ab") as handle:
        handle.write(b"garbage" * 100)
    with open(tmp_path / "archive.entries", "ab") as handle:  # entries of an unsaved step
        handle.write(b'{"Entry": {"Name": "lost.dcm"}}\n')
    assert len(json.dumps(snapshot)) < 2000  # the entries written are not in the snapshot
    resumed = ArchiveJob(services, snapshot)
    steps = 0
    while resumed.step(context).outcome.value == "Continue":
        steps += 1
    assert steps == len(entries) - 2  # one file per step, then the closing step
    content = resumed.content()
    assert content["InstancesCount"] == 6
    assert int(content["ArchiveSize"]) == (tmp_path / "archive.zip").stat().st_size
    output = resumed.outputs()["archive"]
    data = output.path.read_bytes()
    _check_identical(services, data, entries)
    if media:
        assert "DICOMDIR" in zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_asynchronous_archive_job(loaded: Loaded) -> None:
    services, client = loaded
    job = client.post(f"/studies/{STUDY}/archive", json={"Asynchronous": True}).json()
    for _ in range(100):
        info = client.get(job["Path"]).json()
        if info["State"] in ("Success", "Failure"):
            break
        time.sleep(0.05)
    assert info["State"] == "Success", info
    assert info["Type"] == "Archive"
    assert set(info["Content"]) == {
        "Description", "InstancesCount", "UncompressedSize", "UncompressedSizeMB",
        "ArchiveSize", "ArchiveSizeMB",
    }  # fmt: skip
    download = client.get(f"{job['Path']}/archive")
    assert download.status_code == 200
    _check_identical(services, download.content, plan_archive(services, [STUDY], media=False))
