"""Durability beyond Orthanc: a job survives a SIGKILL and resumes from its last step."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.server_process import ObeliskProcess


def job(client: httpx.Client, job_id: str) -> Any:
    return client.get(f"/jobs/{job_id}").json()


def test_sigkill_then_restart_resumes_a_long_job(
    obelisk_factory: Callable[..., ObeliskProcess],
) -> None:
    server = obelisk_factory().start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        request = {"Type": "Noop", "Steps": 60, "StepDuration": 0.05}
        job_id = client.post("/queue/add", json=request).json()["ID"]
        deadline = time.monotonic() + 20
        while job(client, job_id)["Content"]["Position"] < 15:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.kill()
    server.start()  # same configuration, same port: the same node name
    with httpx.Client(base_url=server.url, timeout=30) as client:
        deadline = time.monotonic() + 30
        while (body := job(client, job_id))["State"] != "Success":
            assert body["State"] in ("Pending", "Running"), body
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert body["Content"]["Position"] == 60
        resumed_at = body["Content"]["Rebuilds"]
        assert len(resumed_at) == 1 and resumed_at[0] >= 15  # not from scratch
        assert body["EffectiveRuntime"] >= 0.7  # runtime before the crash is kept
    server.stop()


def test_no_jobs_flag_starts_without_saved_jobs(
    obelisk_factory: Callable[..., ObeliskProcess],
) -> None:
    server = obelisk_factory().start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.post("/queue/stop")
        job_id = client.post("/queue/add", json={"Type": "Noop"}).json()["ID"]
    server.stop()
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert job(client, job_id)["State"] in ("Pending", "Running", "Success")
    server.stop()
    server.start("--no-jobs")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get(f"/jobs/{job_id}").status_code == 404
    server.stop()
