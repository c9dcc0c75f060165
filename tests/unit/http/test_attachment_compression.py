"""``POST /{level}/{id}/attachments/{name}/compress|uncompress``, answers checked against Orthanc
1.10.1: ``{}`` on success, a no-op when already so, the data unchanged, the blob swapped."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from obelisk.core.identifiers import ResourceIds
from obelisk.http.app import create_app
from obelisk.index.sql_writer import SqlWriter
from obelisk.services.context import Services
from tests.conftest import make_services
from tests.dicom_factory import make_dicom

IDS = ResourceIds.compute("P001", "1.2.3", "1.2.3.4", "1.2.3.4.5")
INSTANCE = f"/instances/{IDS.instance}"
USER = f"{INSTANCE}/attachments/1025"
PAYLOAD = b"hello world" * 20


@pytest.fixture
def stored(client: TestClient) -> bytes:
    data = make_dicom()
    assert client.post("/instances", content=data).status_code == 200
    return data


def _info(client: TestClient, path: str) -> dict[str, object]:
    answer = client.get(f"{path}/info")
    assert answer.status_code == 200, answer.text
    info: dict[str, object] = answer.json()
    return info


def _last_change(client: TestClient) -> int:
    last: int = client.get("/changes?limit=1000").json()["Last"]
    return last


def _stored_uuids(services: Services) -> set[str]:
    return set(services.storage.list_uuids())


def test_compress_then_uncompress_a_user_attachment(
    client: TestClient, services: Services, stored: bytes
) -> None:
    assert client.put(USER, content=PAYLOAD).status_code == 200
    plain = _info(client, USER)
    assert client.get(f"{USER}/is-compressed").text == "0"
    since = _last_change(client)

    answer = client.post(f"{USER}/compress")
    assert answer.status_code == 200 and answer.json() == {}
    packed = struct.pack("<Q", len(PAYLOAD)) + zlib.compress(PAYLOAD, 6)
    info = _info(client, USER)
    assert info["Uuid"] != plain["Uuid"]
    assert info["UncompressedSize"] == len(PAYLOAD)
    assert info["UncompressedMD5"] == hashlib.md5(PAYLOAD).hexdigest()
    assert client.get(f"{USER}/is-compressed").text == "1"
    assert client.get(f"{USER}/compressed-size").text == str(len(packed))
    assert client.get(f"{USER}/compressed-md5").text == hashlib.md5(packed).hexdigest()
    assert client.get(f"{USER}/compressed-data").content == packed
    assert client.get(f"{USER}/data").content == PAYLOAD
    assert client.post(f"{USER}/verify-md5").status_code == 200
    assert plain["Uuid"] not in _stored_uuids(services)
    assert info["Uuid"] in _stored_uuids(services)
    changes = client.get(f"/changes?since={since}").json()["Changes"]
    assert [(c["ChangeType"], c["ID"]) for c in changes] == [("UpdatedAttachment", IDS.instance)]

    # Compressing again does nothing, not even a change.
    assert client.post(f"{USER}/compress").json() == {}
    assert _info(client, USER) == info
    assert client.get(f"/changes?since={since}").json()["Last"] == since + 1

    assert client.post(f"{USER}/uncompress").json() == {}
    back = _info(client, USER)
    assert back["Uuid"] not in (plain["Uuid"], info["Uuid"])
    assert {k: v for k, v in back.items() if k != "Uuid"} == {
        k: v for k, v in plain.items() if k != "Uuid"
    }
    assert client.get(f"{USER}/is-compressed").text == "0"
    assert client.get(f"{USER}/compressed-data").content == PAYLOAD
    assert client.post(f"{USER}/uncompress").json() == {}
    assert _info(client, USER) == back


def test_the_dicom_file_survives_compression(
    client: TestClient, services: Services, stored: bytes
) -> None:
    dicom = f"{INSTANCE}/attachments/dicom"
    tags = client.get(f"{INSTANCE}/tags?simplify").json()
    since = _last_change(client)
    assert client.post(f"{dicom}/compress").status_code == 200
    assert client.get(f"{dicom}/is-compressed").text == "1"
    assert int(client.get(f"{dicom}/compressed-size").text) < len(stored)
    assert client.get(f"{INSTANCE}/file").content == stored
    assert client.get(f"{dicom}/data").content == stored
    assert client.get(f"{INSTANCE}/tags?simplify").json() == tags
    assert client.get(f"/series/{IDS.series}/archive").status_code == 200
    assert client.post(f"{INSTANCE}/attachments/1/uncompress").status_code == 200
    assert client.get(f"{dicom}/is-compressed").text == "0"
    assert client.get(f"{dicom}/compressed-data").content == stored
    assert client.get(f"{INSTANCE}/file").content == stored
    # Orthanc logs changes of user attachments only.
    assert _last_change(client) == since
    assert len(_stored_uuids(services)) == 1


def test_other_levels(client: TestClient, stored: bytes) -> None:
    path = f"/series/{IDS.series}/attachments/2000"
    assert client.put(path, content=b"abc").status_code == 200
    assert client.post(f"{path}/compress").status_code == 200
    assert client.get(f"{path}/is-compressed").text == "1"
    assert client.get(f"{path}/data").content == b"abc"
    assert client.post(f"/patients/{IDS.patient}/attachments/2000/compress").status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"{INSTANCE}/attachments/1026/compress", 17),  # no such attachment: Unknown resource
        (f"{INSTANCE}/attachments/nosuch/compress", 7),  # no such name: Inexistent item
        ("/instances/nope/attachments/dicom/compress", 17),
        (f"/series/{IDS.series}/attachments/dicom/uncompress", 17),
    ],
)
def test_errors_as_orthanc(client: TestClient, stored: bytes, path: str, status: int) -> None:
    answer = client.post(path)
    assert answer.status_code == 404
    assert answer.json()["OrthancStatus"] == status


def test_only_post(client: TestClient, stored: bytes) -> None:
    assert client.get(f"{INSTANCE}/attachments/dicom/compress").status_code == 405
    assert "compress" in client.get(f"{INSTANCE}/attachments/dicom").json()


def test_failed_swap_keeps_the_old_blob(
    client: TestClient, services: Services, stored: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.put(USER, content=PAYLOAD).status_code == 200
    before = _info(client, USER)
    uuids = _stored_uuids(services)

    def crash(*args: object) -> bool:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(SqlWriter, "replace_attachment", crash)
    assert client.post(f"{USER}/compress").status_code == 500
    assert _info(client, USER) == before
    assert _stored_uuids(services) == uuids  # the new blob is gone, the old one stays
    assert client.get(f"{USER}/data").content == PAYLOAD


def test_concurrent_change_is_a_revision_conflict(
    client: TestClient, services: Services, stored: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.put(USER, content=PAYLOAD).status_code == 200
    before = _info(client, USER)
    uuids = _stored_uuids(services)
    monkeypatch.setattr(SqlWriter, "replace_attachment", lambda *args: False)
    answer = client.post(f"{USER}/compress")
    assert answer.status_code == 409
    assert answer.json()["OrthancStatus"] == 43
    assert _info(client, USER) == before
    assert _stored_uuids(services) == uuids


@pytest.fixture
def compressing_client() -> Iterator[TestClient]:
    svc = make_services(StorageCompression=True)
    with TestClient(create_app(svc), client=("127.0.0.1", 1)) as client:
        yield client
    svc.close()


def test_uncompress_under_storage_compression(compressing_client: TestClient) -> None:
    client = compressing_client
    data = make_dicom()
    assert client.post("/instances", content=data).status_code == 200
    dicom = f"{INSTANCE}/attachments/dicom"
    assert client.get(f"{dicom}/is-compressed").text == "1"
    assert client.post(f"{dicom}/uncompress").status_code == 200
    assert client.get(f"{dicom}/is-compressed").text == "0"
    assert client.get(f"{dicom}/compressed-size").text == str(len(data))
    assert client.get(f"{dicom}/compressed-md5").text == hashlib.md5(data).hexdigest()
    assert client.get(f"{INSTANCE}/file").content == data
    assert client.post(f"{dicom}/compress").status_code == 200
    assert client.get(f"{INSTANCE}/file").content == data
