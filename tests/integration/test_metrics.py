"""``/tools/metrics-prometheus`` of the real server: Orthanc's names and values after known
operations, parsed by prometheus_client, linted by ``promtool``, compared with Orthanc 1.10.1."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.dicom_factory import make_series
from tests.integration.server_process import ObeliskProcess
from tests.support.orthanc import orthanc_available, running_orthanc

INSTANCES = 5

#: promtool's lint findings on Orthanc's own names (unit abbreviations ms/mb/s, and
#: orthanc_dicom_cache_count's "_count"). The names are kept: dashboards and alerts written for
#: Orthanc use them. Any other finding, and any finding on an obelisk_ metric, fails.
ORTHANC_NAME_FINDINGS = (
    "metric names should not contain abbreviated units",
    'non-histogram and non-summary metrics should not have "_count" suffix',
)


def parse(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def upload(url: str, files: list[bytes]) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for data in files:
            assert client.post("/instances", content=data).status_code == 200


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/setup --system installs Debian's prometheus")
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return found


def test_counts_sizes_and_durations_after_uploads(
    obelisk_factory: Callable[..., ObeliskProcess],
) -> None:
    files = make_series(INSTANCES)
    with obelisk_factory() as server:
        upload(server.url, files)
        answer = httpx.get(f"{server.url}/tools/metrics-prometheus")
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        values = parse(answer.text)
        assert values["orthanc_count_instances"] == INSTANCES
        assert values["orthanc_count_series"] == 1
        assert values["orthanc_count_studies"] == 1
        assert values["orthanc_count_patients"] == 1
        total = sum(len(f) for f in files)
        assert values["orthanc_storage_written_bytes"] == total  # real files, uncompressed
        assert values["orthanc_uncompressed_size_mb"] == pytest.approx(total / 2**20)
        assert values["orthanc_disk_size_mb"] == pytest.approx(total / 2**20)
        for duration in (
            "orthanc_store_dicom_duration_ms",
            "orthanc_storage_create_duration_ms",
            "orthanc_rest_api_duration_ms",
        ):
            assert 0 < values[duration] < 10_000, duration
        assert values["orthanc_rest_api_active_requests"] >= 1  # this request
        assert values["orthanc_up_time_s"] >= 0
        last = httpx.get(f"{server.url}/changes?last").json()["Last"]
        assert values["orthanc_last_change"] == last
        assert values["orthanc_jobs_running"] == 0
        assert values["obelisk_group_commit_instances_total"] == INSTANCES

        instance = httpx.get(f"{server.url}/instances").json()[0]
        httpx.get(f"{server.url}/instances/{instance}/file")
        read = parse(httpx.get(f"{server.url}/tools/metrics-prometheus").text)
        assert read["orthanc_storage_read_bytes"] >= min(len(f) for f in files)

        assert httpx.put(f"{server.url}/tools/metrics", content="0").status_code == 200
        assert httpx.get(f"{server.url}/tools/metrics-prometheus").content == b""


def test_promtool_accepts_the_exposition(
    obelisk_factory: Callable[..., ObeliskProcess], tmp_path: Path
) -> None:
    tool = promtool()
    with obelisk_factory() as server:
        upload(server.url, make_series(2))
        text = httpx.get(f"{server.url}/tools/metrics-prometheus").text
    checked = subprocess.run(
        [tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    problems = [line for line in (checked.stdout + checked.stderr).splitlines() if line.strip()]
    # Exit 0: clean; 3: lint findings only (1 would be a parse error).
    assert checked.returncode in (0, 3), problems
    unexpected = [
        line
        for line in problems
        if not (line.startswith("orthanc_") and line.endswith(ORTHANC_NAME_FINDINGS))
    ]
    assert not unexpected, unexpected
    obelisk_only = "".join(
        "# HELP " + block for block in text.split("# HELP ") if block.startswith("obelisk_")
    )
    clean = subprocess.run(
        [tool, "check", "metrics"], input=obelisk_only, capture_output=True, text=True, timeout=60
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr


@pytest.mark.orthanc
def test_every_metric_orthanc_1_10_1_exports_is_exported(
    obelisk_factory: Callable[..., ObeliskProcess], tmp_path: Path
) -> None:
    if not orthanc_available():
        pytest.skip("Orthanc 1.10.1 is not installed")
    files = make_series(3)
    with running_orthanc(tmp_path / "orthanc") as orthanc:
        upload(orthanc.url, files)
        theirs = parse(httpx.get(f"{orthanc.url}/tools/metrics-prometheus").text)
    with obelisk_factory() as server:
        upload(server.url, files)
        ours = parse(httpx.get(f"{server.url}/tools/metrics-prometheus").text)
    assert set(theirs) <= set(ours), sorted(set(theirs) - set(ours))
    for name in ("orthanc_count_instances", "orthanc_count_studies", "orthanc_disk_size_mb"):
        assert ours[name] == pytest.approx(theirs[name], rel=1e-3), name
