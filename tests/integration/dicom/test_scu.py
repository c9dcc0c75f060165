"""The REST DICOM client (/modalities, /queries) against a pynetdicom SCP started by the test.

The peer ``PEER`` keeps what it receives, answers C-FIND from it (study level) and serves C-MOVE
by sending it to the destination, which is the server itself: a query/retrieve round trip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import _STORAGE_CLASSES

from tests.integration.dicom.conftest import AET
from tests.integration.server_process import ObeliskProcess

VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"


class Peer:
    def __init__(self, port: int, obelisk_port: int) -> None:
        self.received: list[pydicom.Dataset] = []
        self.moves: list[tuple[str, str]] = []
        self.finds: list[pydicom.Dataset] = []
        self._obelisk_port = obelisk_port
        self.ae = AE(ae_title="PEER")
        self.ae.add_supported_context(VERIFICATION)
        self.ae.add_supported_context(STUDY_ROOT_FIND)
        self.ae.add_supported_context(STUDY_ROOT_MOVE)
        for uid in sorted(set(_STORAGE_CLASSES.values()))[:100]:
            self.ae.add_supported_context(uid)
        ct = "1.2.840.10008.5.1.4.1.1.2"
        self.ae.add_requested_context(ct)
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_MOVE, self._on_move),
        ]
        self.server = self.ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)

    def _on_store(self, event: evt.Event) -> int:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        self.received.append(dataset)
        return 0

    def _studies(self, uid: str = "") -> list[pydicom.Dataset]:
        seen: dict[str, pydicom.Dataset] = {}
        for dataset in self.received:
            if uid and dataset.StudyInstanceUID != uid:
                continue
            seen.setdefault(str(dataset.StudyInstanceUID), dataset)
        return list(seen.values())

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int, pydicom.Dataset | None]]:
        self.finds.append(event.identifier)
        for dataset in self._studies(str(event.identifier.get("StudyInstanceUID", "") or "")):
            answer = pydicom.Dataset()
            answer.QueryRetrieveLevel = "STUDY"
            answer.StudyInstanceUID = dataset.StudyInstanceUID
            answer.PatientID = dataset.PatientID
            answer.PatientName = dataset.PatientName
            yield 0xFF00, answer

    def _on_move(self, event: evt.Event) -> Iterator[Any]:
        uid = str(event.identifier.StudyInstanceUID)
        self.moves.append((str(event.move_destination).strip(), uid))
        if str(event.move_destination).strip() != AET:
            yield None, None
            return
        datasets = [d for d in self.received if d.StudyInstanceUID == uid]
        yield "127.0.0.1", self._obelisk_port
        yield len(datasets)
        for dataset in datasets:
            yield 0xFF00, dataset

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def peer(server: ObeliskProcess, peer_port: int) -> Iterator[Peer]:
    running = Peer(peer_port, int(server.config["DicomPort"]))
    yield running
    running.stop()


def _upload(server: ObeliskProcess, files: list[Path]) -> list[dict[str, Any]]:
    return [httpx.post(f"{server.url}/instances", content=f.read_bytes()).json() for f in files]


def test_echo(server: ObeliskProcess, peer: Peer) -> None:
    answer = httpx.post(f"{server.url}/modalities/peer/echo", json={})
    assert answer.status_code == 200 and answer.json() == {}


def test_echo_to_nobody_is_a_network_error(server: ObeliskProcess) -> None:
    body = {"AET": "NOBODY", "Host": "127.0.0.1", "Port": 9}  # discard port: nothing listens
    assert httpx.put(f"{server.url}/modalities/nobody", json=body).status_code == 200
    failed = httpx.post(f"{server.url}/modalities/nobody/echo", json={"Timeout": 2}, timeout=30)
    assert failed.status_code == 500 and failed.json()["OrthancStatus"] == 9


def test_store_job_and_store_straight(
    server: ObeliskProcess, peer: Peer, dicom_files: list[Path]
) -> None:
    uploaded = _upload(server, dicom_files[:3])
    study = uploaded[0]["ParentStudy"]
    before = len(peer.received)
    content = httpx.post(
        f"{server.url}/modalities/peer/store", json={"Resources": [study]}, timeout=60
    ).json()
    assert content["InstancesCount"] == 3 and content["FailedInstancesCount"] == 0
    assert content["RemoteAet"] == "PEER" and content["LocalAet"] == AET
    assert len(peer.received) == before + 3
    straight = httpx.post(
        f"{server.url}/modalities/peer/store-straight",
        content=dicom_files[3].read_bytes(),
        timeout=60,
    ).json()
    assert straight["SOPInstanceUID"] == pydicom.dcmread(dicom_files[3]).SOPInstanceUID
    assert peer.received[-1].SOPInstanceUID == straight["SOPInstanceUID"]
    job = httpx.post(
        f"{server.url}/modalities/peer/store", json={"Resources": [study], "Asynchronous": True}
    ).json()
    assert job["Path"] == f"/jobs/{job['ID']}"


def test_query_and_retrieve_round_trip(
    server: ObeliskProcess, peer: Peer, dicom_files: list[Path]
) -> None:
    uploaded = _upload(server, dicom_files[:3])
    study_id = uploaded[0]["ParentStudy"]
    study_uid = str(pydicom.dcmread(dicom_files[0]).StudyInstanceUID)
    httpx.post(f"{server.url}/modalities/peer/store", json=[study_id], timeout=60)
    assert httpx.delete(f"{server.url}/studies/{study_id}").status_code == 200

    created = httpx.post(
        f"{server.url}/modalities/peer/query",
        json={"Level": "Study", "Query": {"StudyInstanceUID": study_uid, "PatientName": ""}},
        timeout=60,
    ).json()
    query = f"{server.url}/queries/{created['ID']}"
    assert httpx.get(f"{query}/answers").json() == ["0"]
    content = httpx.get(f"{query}/answers/0/content?simplify").json()
    assert content["StudyInstanceUID"] == study_uid
    # A child query of the answer: series of that study, on the same modality.
    child = httpx.post(f"{query}/answers/0/query-series", json={}, timeout=60).json()
    assert "ID" in child, child
    assert httpx.get(f"{server.url}/queries/{child['ID']}/level").json() == "Series"
    sent = peer.finds[-1]
    assert sent.QueryRetrieveLevel == "SERIES" and sent.StudyInstanceUID == study_uid
    wrong = httpx.post(f"{query}/answers/0/query-instances", json={}, timeout=60)
    assert wrong.status_code == 400  # instances are not the children of a study answer
    retrieved = httpx.post(f"{query}/answers/0/retrieve", content=AET, timeout=60).json()
    assert retrieved["TargetAet"] == AET and retrieved["RemoteAet"] == "PEER"
    assert peer.moves[-1] == (AET, study_uid)
    assert httpx.get(f"{server.url}/studies/{study_id}").status_code == 200
    assert len(httpx.get(f"{server.url}/studies/{study_id}/instances").json()) == 3

    moved = httpx.post(
        f"{server.url}/modalities/peer/move",
        json={"Level": "Study", "Resources": [{"StudyInstanceUID": study_uid}], "TargetAet": "X"},
        timeout=60,
    )
    assert moved.status_code == 500 and moved.json()["OrthancStatus"] == 9  # 0xA801 at the peer
