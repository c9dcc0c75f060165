"""Metrics: Orthanc's windows, one registry per server, the in-process exposition."""

from __future__ import annotations

import logging

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from obelisk.log_levels import CATEGORIES
from obelisk.metrics import Metrics, WindowMax
from tests.dicom_factory import make_series


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scrape(metrics: Metrics) -> dict[str, float]:
    text = metrics.exposition().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_window_max_keeps_the_largest_value_of_the_last_ten_seconds() -> None:
    clock = FakeClock()
    window = WindowMax(clock=clock)
    assert window.value() == 0 and not window.recorded
    window.record(5)
    clock.now += 4
    window.record(3)
    assert window.value() == 5
    clock.now += 7  # the 5 is 11 s old, the 3 is 7 s old
    assert window.value() == 3
    clock.now += 4
    assert window.value() == 0


def test_two_servers_in_one_process_have_separate_metrics() -> None:
    first, second = Metrics(), Metrics()
    first.observe_find_scp(12.5)
    first.observe_storage("create", 1.0, 1000)
    assert scrape(first)["orthanc_find_scp_duration_ms"] == 12.5
    assert scrape(first)["orthanc_storage_written_bytes"] == 1000
    assert "orthanc_find_scp_duration_ms" not in scrape(second)  # only once recorded
    assert "orthanc_storage_written_bytes" not in scrape(second)


def test_timed_records_milliseconds_and_disabled_metrics_record_nothing() -> None:
    metrics = Metrics()
    with metrics.timed("orthanc_move_scp_duration_ms"):
        pass
    assert 0 <= scrape(metrics)["orthanc_move_scp_duration_ms"] < 100
    metrics.enabled = False
    metrics.observe_get_scp(5)
    assert metrics.exposition() == b""
    metrics.enabled = True
    assert "orthanc_get_scp_duration_ms" not in scrape(metrics)


def test_active_requests_counts_a_request_longer_than_the_window() -> None:
    clock = FakeClock()
    metrics = Metrics(clock=clock)
    metrics.request_started()
    metrics.request_started()
    metrics.request_finished()
    assert scrape(metrics)["orthanc_rest_api_active_requests"] == 2
    clock.now += 30
    assert scrape(metrics)["orthanc_rest_api_active_requests"] == 1


def test_exposition_after_uploads(client: TestClient) -> None:
    files = make_series(3)
    for data in files:
        assert client.post("/instances", content=data).status_code == 200
    assert client.get("/instances/unknown/file").status_code == 404
    response = client.get("/tools/metrics-prometheus")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert values["orthanc_count_instances"] == 3
    assert values["orthanc_count_series"] == 1
    assert values["orthanc_count_studies"] == 1
    assert values["orthanc_count_patients"] == 1
    assert values["orthanc_storage_written_bytes"] == sum(len(f) for f in files)
    assert values["orthanc_disk_size_mb"] == sum(len(f) for f in files) / 2**20
    assert values["orthanc_store_dicom_duration_ms"] > 0
    assert values["orthanc_rest_api_duration_ms"] > 0
    assert values["orthanc_last_change"] == client.get("/changes?last").json()["Last"]
    assert values["obelisk_group_commit_instances_total"] == 3
    assert values["orthanc_jobs_pending"] == 0


def test_metrics_switch_and_log_levels(client: TestClient) -> None:
    assert client.get("/tools/metrics").text == "1"
    assert client.put("/tools/metrics", content="0").status_code == 200
    assert client.get("/tools/metrics").text == "0"
    assert client.get("/tools/metrics-prometheus").content == b""
    assert client.put("/tools/metrics", content="maybe").status_code == 400
    assert client.put("/tools/metrics", content="1").status_code == 200
    try:
        assert client.put("/tools/log-level-http", content="trace").text == "trace"
        assert client.get("/tools/log-level-http").text == "trace"
        assert client.get("/tools/log-level-jobs").text == "default"
        assert client.put("/tools/log-level", content="verbose").status_code == 200
        assert client.get("/tools/log-level-jobs").text == "verbose"
        assert client.put("/tools/log-level", content="loud").status_code == 400
    finally:  # loggers belong to the process: leave them as other tests expect
        for name in [n for names in CATEGORIES.values() for n in names] + ["pynetdicom"]:
            logging.getLogger(name).setLevel(logging.NOTSET)
