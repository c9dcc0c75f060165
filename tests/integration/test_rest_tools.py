"""The REST routes added for Orthanc 1.10.1 compatibility, through the real server process
(uvicorn, SQLite file index, filesystem storage): bulk tools, attachment compression,
revisions, export to the server's disk, /plugins and the series' NumPy array."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from tests.dicom_factory import make_dicom
from tests.integration.server_process import ObeliskProcess


def _upload(url: str, count: int) -> list[dict[str, str]]:
    return [
        httpx.post(
            f"{url}/instances",
            content=make_dicom(sop_uid=f"1.2.3.4.{n}", instance_number=n),
            timeout=10,
        ).json()
        for n in range(1, count + 1)
    ]


def test_rest_tools_on_the_running_server(
    obelisk_factory: Callable[..., ObeliskProcess], tmp_path: Path
) -> None:
    server = obelisk_factory({"RestApiWriteToFileSystemEnabled": True}).start()
    url = server.url
    stored = _upload(url, 2)
    instance, series = stored[0]["ID"], stored[0]["ParentSeries"]
    original = httpx.get(f"{url}/instances/{instance}/file").content

    # bulk-content: the same JSON as GET, one entry per identifier
    bulk = httpx.post(
        f"{url}/tools/bulk-content", json={"Resources": [series], "Metadata": False}
    ).json()
    assert bulk == [httpx.get(f"{url}/series/{series}").json()]

    # the DICOM file compressed and back: same bytes, the compressed form on disk in between
    attachment = f"{url}/instances/{instance}/attachments/dicom"
    assert httpx.post(f"{attachment}/compress").json() == {}
    assert httpx.get(f"{attachment}/is-compressed").text == "1"
    assert httpx.get(f"{url}/instances/{instance}/file").content == original
    assert httpx.post(f"{attachment}/uncompress").json() == {}
    assert httpx.get(f"{attachment}/is-compressed").text == "0"
    assert httpx.get(f"{url}/instances/{instance}/file").content == original

    # revisions: a stale If-Match is refused, the current one accepted
    metadata = f"{url}/instances/{instance}/metadata/1024"
    first = httpx.put(metadata, content=b"one")
    assert first.status_code == 200
    etag = httpx.get(metadata).headers["ETag"]
    assert httpx.put(metadata, content=b"two", headers={"If-Match": etag}).status_code == 200
    stale = httpx.put(metadata, content=b"three", headers={"If-Match": etag})
    assert stale.status_code == 409 and stale.json()["OrthancStatus"] == 43
    assert httpx.get(metadata).text == "two"

    # export to the server's disk, allowed by the configuration
    target = tmp_path / "exported.dcm"
    assert httpx.post(f"{url}/instances/{instance}/export", content=str(target)).json() == {}
    assert target.read_bytes() == original

    # /plugins names the built-in DICOMweb; the series as one NumPy array
    assert httpx.get(f"{url}/plugins").json() == ["explorer.js", "dicom-web"]
    array = np.load(io.BytesIO(httpx.get(f"{url}/series/{series}/numpy").content))
    assert array.shape[0] == 2

    # bulk-delete empties the server
    assert httpx.post(f"{url}/tools/bulk-delete", json={"Resources": [series]}).status_code == 200
    assert httpx.get(f"{url}/statistics").json()["CountInstances"] == 0
