"""``POST /tools/shutdown`` and ``POST /tools/reset`` on the real server process."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable

import httpx

from tests.dicom_factory import make_dicom
from tests.integration.server_process import ObeliskProcess


def test_shutdown_answers_then_stops_the_server(
    obelisk_factory: Callable[..., ObeliskProcess],
) -> None:
    server = obelisk_factory().start()
    assert server.process is not None
    assert httpx.post(f"{server.url}/instances", content=make_dicom()).status_code == 200
    answer = httpx.post(f"{server.url}/tools/shutdown", timeout=10)
    assert answer.status_code == 200 and answer.json() == {}
    assert server.process.wait(timeout=20) == 0
    reserved = list((server.workdir / "storage" / ".reserved").glob("*/*"))
    assert reserved == [], "the files made ahead for uploads are removed on a clean stop"


def test_reset_restarts_the_same_process_with_its_configuration_read_again(
    obelisk_factory: Callable[..., ObeliskProcess],
) -> None:
    server = obelisk_factory({"Name": "before"}).start()
    assert server.process is not None
    stored = httpx.post(f"{server.url}/instances", content=make_dicom(), timeout=10).json()
    config = json.loads(server.config_path.read_text())
    server.config_path.write_text(json.dumps({**config, "Name": "after"}))

    answer = httpx.post(f"{server.url}/tools/reset", timeout=10)
    assert answer.status_code == 200 and answer.json() == {}
    name = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and name != "after":
        try:
            name = httpx.get(f"{server.url}/system", timeout=1).json()["Name"]
        except httpx.HTTPError:
            time.sleep(0.1)
    assert name == "after", server.log_path.read_text()[-3000:]
    assert server.process.poll() is None, "the same process (PID) serves again"
    instance = httpx.get(f"{server.url}/instances/{stored['ID']}", timeout=10)
    assert instance.status_code == 200


def test_reconstruct_through_the_server_restores_the_files_main_tags(
    obelisk_factory: Callable[..., ObeliskProcess],
) -> None:
    """The index is edited behind the server's back (as a buggy version could have written it);
    ``POST /studies/{id}/reconstruct`` on the running server puts the files' tags back."""
    server = obelisk_factory().start()
    stored = httpx.post(
        f"{server.url}/instances", content=make_dicom(patient_name="DOE^JANE"), timeout=10
    ).json()
    study_url = f"{server.url}/studies/{stored['ParentStudy']}"
    original = httpx.get(study_url, timeout=10).json()
    index = sqlite3.connect(server.workdir / "storage" / "index.db")
    with index:
        index.execute(
            "UPDATE resources SET patient_tags = ? WHERE public_id = ?",
            (json.dumps({"PatientName": "WRONG"}), stored["ParentStudy"]),
        )
    index.close()
    assert httpx.get(study_url).json()["PatientMainDicomTags"] == {"PatientName": "WRONG"}

    answer = httpx.post(f"{study_url}/reconstruct", timeout=30)

    assert answer.status_code == 200 and answer.content == b""
    assert httpx.get(study_url).json()["PatientMainDicomTags"] == original["PatientMainDicomTags"]
    found = httpx.post(
        f"{server.url}/tools/find",
        json={"Level": "Study", "Query": {"PatientName": "DOE^JANE"}},
        timeout=10,
    ).json()
    assert found == [stored["ParentStudy"]]
