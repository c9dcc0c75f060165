"""The REST edge of the jobs engine, in process: /jobs (Orthanc) and /queue (beyond Orthanc)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from obelisk.http.app import create_app
from obelisk.services.context import Services
from tests.conftest import make_services


@pytest.fixture
def services() -> Iterator[Services]:
    found = make_services(JobsHistorySize=5)
    found.jobs.poll_interval = 0.05
    found.jobs.start()
    yield found
    found.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(
        create_app(services), client=("127.0.0.1", 50000), raise_server_exceptions=False
    ) as test_client:
        yield test_client


def add(client: TestClient, **request: Any) -> Any:
    response = client.post("/queue/add", json={"Type": "Noop", **request})
    assert response.status_code == 200, response.text
    return response.json()


def wait_state(client: TestClient, job_id: str, state: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if body["State"] == state:
            return body
        time.sleep(0.02)
    raise AssertionError(f"{job_id} never reached {state}")


def test_async_submission_answers_id_and_path(client: TestClient) -> None:
    answer = add(client, Steps=2)
    assert set(answer) == {"ID", "Path"} and answer["Path"] == f"/jobs/{answer['ID']}"
    body = wait_state(client, answer["ID"], "Success")
    assert body["Type"] == "Noop" and body["Progress"] == 100
    assert body["ErrorCode"] == 0 and body["ErrorDescription"] == "Success"
    assert body["ErrorDetails"] == "" and "CompletionTime" in body
    assert body["Content"] == {"Description": "Noop", "Position": 2, "Rebuilds": [], "Steps": 2}
    assert {"CreationTime", "Timestamp", "EffectiveRuntime", "Priority"} <= set(body)
    assert answer["ID"] in client.get("/jobs").json()
    expanded = client.get("/jobs?expand").json()
    assert [job["ID"] for job in expanded] == client.get("/jobs").json()


def test_synchronous_submission_answers_content_or_the_error(client: TestClient) -> None:
    ok = client.post("/queue/add", json={"Type": "Noop", "Steps": 3, "Synchronous": True})
    assert ok.status_code == 200
    assert ok.json()["Position"] == 3
    assert (
        client.post(
            "/queue/add", json={"Type": "Noop", "Asynchronous": False, "Synchronous": False}
        )
        .json()
        .keys()
        == {"ID", "Path"}  # Synchronous wins
    )
    failed = client.post(
        "/queue/add", json={"Type": "Noop", "FailAt": 0, "FailCode": 15, "Synchronous": True}
    )
    assert failed.status_code == 400
    assert failed.json()["OrthancStatus"] == 15
    assert failed.json()["Details"] == "Noop failed at step 0"


def test_unknown_job_is_an_empty_404_and_actions_an_empty_400(client: TestClient) -> None:
    response = client.get("/jobs/nope")
    assert (response.status_code, response.content) == (404, b"")
    for action in ("cancel", "pause", "resume", "resubmit"):
        response = client.post(f"/jobs/nope/{action}")
        assert (response.status_code, response.content) == (400, b"")


def test_actions_follow_orthancs_table(client: TestClient) -> None:
    job_id = add(client, Steps=10_000, StepDuration=0.01)["ID"]
    wait_state(client, job_id, "Running")
    assert client.post(f"/jobs/{job_id}/resume").status_code == 400
    assert client.post(f"/jobs/{job_id}/resubmit").status_code == 400
    paused = client.post(f"/jobs/{job_id}/pause")
    assert (paused.status_code, paused.json()) == (200, {})
    wait_state(client, job_id, "Paused")
    assert client.post(f"/jobs/{job_id}/resume").json() == {}
    assert client.post(f"/jobs/{job_id}/cancel").json() == {}
    body = wait_state(client, job_id, "Failure")
    assert body["ErrorCode"] == 37 and body["ErrorDescription"] == "This job was canceled"
    assert client.post(f"/jobs/{job_id}/resubmit").json() == {}
    wait_state(client, job_id, "Running")
    client.post(f"/jobs/{job_id}/cancel")


def test_outputs_download_and_absent_keys(client: TestClient) -> None:
    job_id = add(client, Output="hello")["ID"]
    wait_state(client, job_id, "Success")
    response = client.get(f"/jobs/{job_id}/result")
    assert response.status_code == 200 and response.text == "hello"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-disposition"] == 'filename="noop.txt"'
    missing = client.get(f"/jobs/{job_id}/archive")
    assert missing.status_code == 404
    assert missing.json()["OrthancStatus"] == 7
    assert missing.json()["Details"] == "Job has no such output: archive"


def test_queue_order_move_and_status(client: TestClient) -> None:
    assert client.post("/queue/stop").json()["Dispatch"] == "stopped"
    ids = [add(client)["ID"] for _ in range(3)]
    queue = client.get("/queue").json()
    assert queue["Dispatch"] == "stopped"
    assert [item["ID"] for item in queue["Items"]] == ids
    assert [item["Position"] for item in queue["Items"]] == [0, 1, 2]
    moved = client.post("/queue/move", json={"Job": ids[2], "Position": "front"}).json()
    assert moved["Position"] == 0 and moved["Queue"] == [ids[2], ids[0], ids[1]]
    moved = client.post("/queue/move", json={"job": ids[2], "after": ids[1]}).json()
    assert moved["Queue"] == [ids[0], ids[1], ids[2]]
    moved = client.post("/queue/move", json={"Job": ids[0], "Before": ids[2]}).json()
    assert moved["Queue"] == [ids[1], ids[0], ids[2]]
    bad = client.post("/queue/move", json={"Job": ids[0]})
    assert bad.status_code == 400 and bad.json()["OrthancStatus"] == 8
    status = client.get("/queue/status").json()
    assert status["Pending"] == 3 and status["Dispatch"] == "stopped"
    assert client.post("/queue/stop-cancel").json()["Dispatch"] == "stopped"
    assert client.post("/queue/start").json()["Dispatch"] == "running"
    for job_id in ids:
        wait_state(client, job_id, "Success")
    assert client.get("/queue").json()["Items"] == []


def test_batch_all_or_nothing(client: TestClient) -> None:
    client.post("/queue/stop")
    rejected = client.post(
        "/queue/batch", json={"Items": [{"Type": "Noop"}, {"Type": "Unknown"}, {"Steps": 1}]}
    )
    assert rejected.status_code == 400
    details = json.loads(rejected.json()["Details"])
    assert details["Message"] == "The batch was rejected: 2 of 3 items are invalid"
    results = details["Results"]
    assert [r["Success"] for r in results] == [True, False, False]
    assert "Unknown" in results[1]["Message"] and "Type" in results[2]["Message"]
    assert client.get("/queue").json()["Items"] == []
    accepted = client.post("/queue/batch", json={"Items": [{"Type": "Noop", "Priority": 2}] * 2})
    assert accepted.status_code == 200
    ids = [r["ID"] for r in accepted.json()["Results"]]
    assert [item["ID"] for item in client.get("/queue").json()["Items"]] == ids
    assert client.post("/queue/batch", json={"Items": "x"}).status_code == 400
    client.post("/queue/start")


def test_history_list_and_clear(client: TestClient) -> None:
    ids = [add(client)["ID"] for _ in range(2)]
    for job_id in ids:
        wait_state(client, job_id, "Success")
    history = client.get("/jobs/history").json()
    assert {job["ID"] for job in history} == set(ids)
    assert [job["ID"] for job in client.get("/queue/history").json()] == [j["ID"] for j in history]
    assert client.delete("/jobs/history").json() == {}
    assert client.get("/jobs/history").json() == []
    assert client.get(f"/jobs/{ids[0]}").status_code == 404


def test_log_tail(client: TestClient, services: Services) -> None:
    import logging

    logging.getLogger("obelisk.test").warning("line for the tail")
    lines = client.get("/queue/log?nlines=3").json()["Lines"]
    assert len(lines) <= 3 and "line for the tail" in lines[-1]
    assert client.get("/queue/log?nlines=x").status_code == 400
