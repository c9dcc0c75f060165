"""SIGKILL during a long Archive job and a long modification job: both resume and complete.

300 CT slices of 256x256 (40 MB) are archived with deflate (a few seconds of work) while the same
study is modified; the server is killed with both jobs part-way, restarted on the same port (same
node name), and each job must go on from its saved step — the progress never goes back, and the
server logs where each job resumed — then produce exactly the expected output: a valid ZIP of the
300 stored files, byte for byte, and 300 modified instances, each from a different source.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
import zipfile
from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.server_process import ObeliskProcess
from tests.support import synthetic

SLICES = 300


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
    return answer


def _upload(client: httpx.Client) -> tuple[str, set[str]]:
    digests = set()
    study = ""
    for instance in synthetic.make_volume(SLICES, 256, seed="obelisk-kill"):
        answer = client.post("/instances", content=instance.data)
        assert answer.status_code == 200, answer.text
        study = answer.json()["ParentStudy"]
        digests.add(_digest(instance.data))
    return study, digests


def _wait_until_both_run(client: httpx.Client, jobs: list[str]) -> dict[str, int]:
    deadline = time.monotonic() + 60
    while True:
        infos = {job_id: _job(client, job_id) for job_id in jobs}
        assert all(i["State"] in ("Pending", "Running") for i in infos.values()), infos
        if all(i["Progress"] >= 5 for i in infos.values()):
            return {job_id: int(info["Progress"]) for job_id, info in infos.items()}
        assert time.monotonic() < deadline, infos
        time.sleep(0.02)


def _wait_for_success(client: httpx.Client, jobs: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Waits for the jobs; their progress must never drop below where they were killed."""
    deadline = time.monotonic() + 120
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(jobs):
        for job_id, killed_at in jobs.items():
            info = _job(client, job_id)
            assert info["State"] in ("Pending", "Running", "Success"), info
            assert info["Progress"] >= killed_at, (info, killed_at)  # not from scratch
            if info["State"] == "Success":
                done[job_id] = info
        assert time.monotonic() < deadline, jobs
        time.sleep(0.05)
    return done


def test_archive_and_modification_jobs_survive_sigkill(
    obelisk_factory: Callable[..., ObeliskProcess],
) -> None:
    server = obelisk_factory({"ConcurrentJobs": 2}).start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        study, digests = _upload(client)
        archive_job = client.post(
            f"/studies/{study}/archive", json={"Asynchronous": True, "Compression": "deflate"}
        ).json()["ID"]
        modify_job = client.post(
            f"/studies/{study}/modify",
            json={"Asynchronous": True, "Replace": {"StudyDescription": "RESUMED"}},
        ).json()["ID"]
        killed_at = _wait_until_both_run(client, [archive_job, modify_job])
        server.kill()
    assert all(progress < 100 for progress in killed_at.values()), killed_at

    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        done = _wait_for_success(client, killed_at)

        # Resumed from the saved step, as the server says (the percentage it restarted from).
        log = server.log_path.read_text()
        for job_id in (archive_job, modify_job):
            found = re.search(rf"Job {job_id} \(\w+\) resumes at (\d+) %", log)
            assert found is not None and int(found.group(1)) > 0, job_id

        # The archive: a valid ZIP of the 300 stored files, byte for byte.
        answer = client.get(f"/jobs/{archive_job}/archive")
        assert answer.status_code == 200
        archive = zipfile.ZipFile(io.BytesIO(answer.content))
        assert archive.testzip() is None
        names = archive.namelist()
        assert len(names) == SLICES == len(set(names))
        assert {_digest(archive.read(name)) for name in names} == digests
        assert done[archive_job]["Content"]["InstancesCount"] == SLICES

        # The modified study: every source modified exactly once, nothing lost.
        content = done[modify_job]["Content"]
        assert content["FailedInstancesCount"] == 0 and content["Type"] == "Study"
        modified = client.get(f"/studies/{content['ID']}/instances").json()
        assert len(modified) == SLICES
        sources = [client.get(f"/instances/{i['ID']}/metadata/ModifiedFrom").text for i in modified]
        originals = {i["ID"] for i in client.get(f"/studies/{study}/instances").json()}
        assert len(set(sources)) == SLICES and set(sources) == originals
        uids = {i["MainDicomTags"]["SOPInstanceUID"] for i in modified}
        assert len(uids) == SLICES
        tags = client.get(f"/studies/{content['ID']}").json()["MainDicomTags"]
        assert tags["StudyDescription"] == "RESUMED"
        assert client.get("/statistics").json()["CountInstances"] == 2 * SLICES
    server.stop()
