"""A SIGKILL during a 4-client upload loses no acknowledged instance and leaves no row without
its file."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.dicom_factory import make_dicom
from tests.integration.server_process import ObeliskProcess


def _uploader(url: str, worker: int, acknowledged: list[str], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        n = 0
        while not stop.is_set():
            n += 1
            data = make_dicom(
                patient_id=f"W{worker}",
                study_uid=f"2.{worker}",
                series_uid=f"2.{worker}.{n // 50}",
                sop_uid=f"2.{worker}.{n // 50}.{n}",
                instance_number=n,
                size=128,
            )
            try:
                response = client.post("/instances", content=data)
            except httpx.HTTPError:
                return  # the server died under us: this upload was never acknowledged
            if response.status_code == 200:
                acknowledged.append(response.json()["ID"])


def test_sigkill_during_concurrent_upload_loses_nothing_acknowledged(
    obelisk_factory: Callable[..., ObeliskProcess],
) -> None:
    server = obelisk_factory().start()
    acknowledged: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_uploader, args=(server.url, w, acknowledged, stop))
        for w in range(4)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    assert len(acknowledged) >= 150, "the uploads were too slow to test anything"

    storage = Path(server.config["StorageDirectory"])
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        stored = set(client.get("/instances").json())
        missing = [i for i in acknowledged if i not in stored]
        assert not missing, f"{len(missing)} acknowledged instances were lost"
        for public_id in acknowledged[:: max(1, len(acknowledged) // 20)]:
            assert client.get(f"/instances/{public_id}/file").status_code == 200
    server.stop()

    # No index row lacks its file.
    database = sqlite3.connect(storage / "index.db")
    uuids = [row[0] for row in database.execute("SELECT uuid FROM attachments")]
    database.close()
    assert len(uuids) >= len(acknowledged)
    for uuid in uuids:
        assert (storage / uuid[:2] / uuid[2:4] / uuid).is_file(), uuid
