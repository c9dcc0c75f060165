"""/modalities and /queries over an in-process app, with a recording fake DICOM client."""

from __future__ import annotations

from collections.abc import Sequence

import pydicom
import pytest
from starlette.testclient import TestClient

from obelisk.core.levels import Level
from obelisk.services.dicom_client import MoveOutcome, Peer
from tests.dicom_factory import make_dicom


class FakeSession:
    def __init__(self, sent: list[bytes]) -> None:
        self.sent = sent

    def send(self, data: bytes, *, move_originator: tuple[str, int] | None = None) -> int:
        self.sent.append(data)
        return 0

    def close(self) -> None:
        return None


class FakeClient:
    def __init__(self) -> None:
        self.echoes: list[Peer] = []
        self.sent: list[bytes] = []
        self.moves: list[tuple[Level, pydicom.Dataset, str]] = []
        self.finds: list[tuple[Level, pydicom.Dataset]] = []

    def echo(self, peer: Peer) -> None:
        self.echoes.append(peer)

    def open_store(self, peer: Peer, contexts: Sequence[tuple[str, str]]) -> FakeSession:
        return FakeSession(self.sent)

    def find(self, peer: Peer, level: Level, identifier: pydicom.Dataset) -> list[pydicom.Dataset]:
        self.finds.append((level, identifier))
        answers = []
        for uid in ("1.2.1", "1.2.2"):
            answer = pydicom.Dataset()
            answer.QueryRetrieveLevel = "STUDY"
            answer.StudyInstanceUID = uid
            answer.PatientName = str(identifier.get("PatientName", ""))
            answers.append(answer)
        return answers

    def move(
        self, peer: Peer, level: Level, identifier: pydicom.Dataset, target_aet: str
    ) -> MoveOutcome:
        self.moves.append((level, identifier, target_aet))
        return MoveOutcome(completed=1)


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


def test_modalities_crud(api: TestClient) -> None:
    assert api.get("/modalities").json() == ["pacs"]
    assert api.put("/modalities/other", json={"AET": "O", "Host": "h", "Port": 104}).json() == {}
    expanded = api.get("/modalities?expand").json()
    assert expanded["other"]["AET"] == "O" and expanded["pacs"]["Port"] == 11112
    assert api.get("/modalities/other/configuration").json()["Host"] == "h"
    assert "store" in api.get("/modalities/pacs").json()
    assert api.delete("/modalities/other").status_code == 200
    missing = api.get("/modalities/other/configuration")
    assert missing.status_code == 404 and missing.json()["OrthancStatus"] == 7
    assert api.put("/modalities/bad", json={"AET": "O"}).status_code == 400


def test_echo_and_store_job(api: TestClient, fake: FakeClient) -> None:
    assert api.post("/modalities/pacs/echo", json={}).json() == {}
    assert fake.echoes[0].aet == "PACS" and fake.echoes[0].local_aet == "ORTHANC"
    uploaded = api.post("/instances", content=make_dicom()).json()
    content = api.post("/modalities/pacs/store", json=[uploaded["ParentStudy"]]).json()
    assert content["InstancesCount"] == 1 and content["FailedInstancesCount"] == 0
    assert content["RemoteAet"] == "PACS" and content["ParentResources"] == [
        uploaded["ParentStudy"]
    ]
    assert fake.sent == [api.get(f"/instances/{uploaded['ID']}/file").content]
    job = api.post(
        "/modalities/pacs/store", json={"Resources": [uploaded["ID"]], "Asynchronous": True}
    )
    assert set(job.json()) == {"ID", "Path"}


def test_query_answers_and_retrieve(api: TestClient, fake: FakeClient) -> None:
    created = api.post(
        "/modalities/pacs/query", json={"Level": "Study", "Query": {"PatientName": "DOE*"}}
    ).json()
    query = created["ID"]
    assert created["Path"] == f"/queries/{query}"
    assert api.get("/queries").json() == [query]
    assert api.get(f"/queries/{query}/answers").json() == ["0", "1"]
    assert api.get(f"/queries/{query}/level").json() == "Study"
    assert api.get(f"/queries/{query}/modality").json() == "pacs"
    assert api.get(f"/queries/{query}/query").json()["PatientName"] == "DOE*"
    full = api.get(f"/queries/{query}/answers/1/content").json()
    assert full["0020,000d"]["Value"] == "1.2.2"
    simple = api.get(f"/queries/{query}/answers/1/content?simplify").json()
    assert simple["StudyInstanceUID"] == "1.2.2"
    moved = api.post(f"/queries/{query}/answers/0/retrieve", content=b"TARGET").json()
    assert moved["TargetAet"] == "TARGET" and moved["RemoteAet"] == "PACS"
    assert fake.moves[0][1].StudyInstanceUID == "1.2.1" and fake.moves[0][2] == "TARGET"
    everything = api.post(f"/queries/{query}/retrieve", json={"TargetAet": "T2"}).json()
    assert len(everything["Query"]) == 2
    assert api.get(f"/queries/{query}/answers/7/content").status_code == 404
    assert api.delete(f"/queries/{query}").status_code == 200
    assert api.get(f"/queries/{query}/answers").status_code == 404


def test_move_and_find_level(api: TestClient, fake: FakeClient) -> None:
    body = {"Level": "Series", "Resources": [{"SeriesInstanceUID": "9.9"}], "TargetAet": "X"}
    content = api.post("/modalities/pacs/move", json=body).json()
    assert content["Query"] == [{"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": "9.9"}]
    assert fake.moves[-1][0] is Level.SERIES
    # As Orthanc 1.10.1: a study query needs a PatientID or AccessionNumber longer than two
    # bytes (else a bare 400, no C-FIND), and patient-level keys do not reach it.
    declined = api.post("/modalities/pacs/find-study", json={"PatientName": "X*"})
    assert declined.status_code == 400 and declined.content == b"" and not fake.finds
    body = {"PatientName": "X*", "PatientID": "P01", "StudyDescription": "CT*"}
    found = api.post("/modalities/pacs/find-study", json=body).json()
    assert [a["StudyInstanceUID"] for a in found] == ["1.2.1", "1.2.2"]
    level, identifier = fake.finds[-1]
    assert level is Level.STUDY and identifier.QueryRetrieveLevel == "STUDY"
    assert identifier.PatientID == "P01" and identifier.StudyDescription == "CT*"
    assert "PatientName" not in identifier and identifier.AccessionNumber == ""
