"""The jobs REST API on the real server process: Orthanc's /jobs and the /queue extensions,
including the Server-Sent-Events stream read with httpx."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from tests.integration.server_process import ObeliskProcess


def wait_state(client: httpx.Client, job_id: str, state: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/jobs/{job_id}").json()
        if body["State"] == state:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {state}")


def test_submit_follow_and_download(obelisk: ObeliskProcess) -> None:
    with httpx.Client(base_url=obelisk.url, timeout=30) as client:
        answer = client.post("/queue/add", json={"Type": "Noop", "Steps": 3, "Output": "bytes"})
        assert answer.status_code == 200
        job_id = answer.json()["ID"]
        body = wait_state(client, job_id, "Success")
        assert body["Progress"] == 100 and body["ErrorCode"] == 0
        output = client.get(f"/jobs/{job_id}/result")
        assert output.content == b"bytes"
        assert client.get(f"/jobs/{job_id}/archive").json()["OrthancStatus"] == 7
        sync = client.post("/queue/add", json={"Type": "Noop", "Steps": 2, "Synchronous": True})
        assert sync.json()["Position"] == 2
        assert job_id in client.get("/jobs").json()
        assert client.get("/jobs/unknown").status_code == 404


def test_pause_resume_cancel_over_http(obelisk: ObeliskProcess) -> None:
    with httpx.Client(base_url=obelisk.url, timeout=30) as client:
        request = {"Type": "Noop", "Steps": 1000, "StepDuration": 0.02}
        job_id = client.post("/queue/add", json=request).json()["ID"]
        wait_state(client, job_id, "Running")
        assert client.post(f"/jobs/{job_id}/pause").json() == {}
        wait_state(client, job_id, "Paused")
        assert client.post(f"/jobs/{job_id}/resume").json() == {}
        assert client.post(f"/jobs/{job_id}/resume").status_code == 400
        assert client.post(f"/jobs/{job_id}/cancel").json() == {}
        assert wait_state(client, job_id, "Failure")["ErrorCode"] == 37


def test_queue_control_and_batch(obelisk: ObeliskProcess) -> None:
    with httpx.Client(base_url=obelisk.url, timeout=30) as client:
        assert client.post("/queue/stop").json()["Dispatch"] == "stopped"
        results = client.post(
            "/queue/batch", json={"Items": [{"Type": "Noop"}, {"Type": "Noop", "Priority": 3}]}
        ).json()["Results"]
        first, urgent = (r["ID"] for r in results)
        assert [i["ID"] for i in client.get("/queue").json()["Items"]] == [urgent, first]
        client.post("/queue/move", json={"Job": first, "Position": "front"})
        assert [i["ID"] for i in client.get("/queue").json()["Items"]] == [first, urgent]
        rejected = client.post("/queue/batch", json={"Items": [{"Type": "Noop", "Steps": -1}]})
        assert rejected.status_code == 400
        assert json.loads(rejected.json()["Details"])["Results"][0]["Success"] is False
        assert client.get("/queue/status").json()["Pending"] == 2
        client.post("/queue/start")
        wait_state(client, urgent, "Success")
        history = client.get("/jobs/history").json()
        assert {job["ID"] for job in history} >= {first, urgent}
        lines = client.get("/queue/log", params={"nlines": 5}).json()["Lines"]
        assert isinstance(lines, list)


def test_event_stream(obelisk: ObeliskProcess) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    connected = threading.Event()
    done = threading.Event()
    failing: list[str] = []

    def complete() -> bool:
        # The failed job is known from its own events: its log line may come before the main
        # thread has read the ID from the answer to its submission.
        states = [d["State"] for k, d in events if k == "job"]
        failed = {d["ID"] for k, d in events if k == "job" and d.get("State") == "Failure"}
        logs = [d["Message"] for k, d in events if k == "log"]
        return "Success" in states and any(job in m for job in failed for m in logs)

    def listen() -> None:
        with (
            httpx.Client(base_url=obelisk.url, timeout=httpx.Timeout(30, read=30)) as client,
            client.stream("GET", "/queue/events") as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            kind = ""
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line[6:])))
                    if complete():
                        done.set()
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(10)
    with httpx.Client(base_url=obelisk.url, timeout=30) as client:
        request = {"Type": "Noop", "Steps": 4, "StepDuration": 0.05}
        job_id = client.post("/queue/add", json=request).json()["ID"]
        wait_state(client, job_id, "Success")
        # A failing job writes a warning in the server log: it comes as an "event: log".
        failing.append(client.post("/queue/add", json={"Type": "Noop", "FailAt": 0}).json()["ID"])
    assert done.wait(20), events
    listener.join(10)
    mine = [data for kind, data in events if kind == "job" and data["ID"] == job_id]
    assert mine[0]["Event"] == "submitted"
    assert [d["State"] for d in mine if d["Event"] == "state"] == ["Running", "Success"]
    assert [d["Progress"] for d in mine if d["Event"] == "progress"] == [25, 50, 75]
    log_line = next(d for k, d in events if k == "log" and failing[0] in d["Message"])
    assert log_line["Level"] == "WARNING" and log_line["Logger"] == "obelisk.jobs"
