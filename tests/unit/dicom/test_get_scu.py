"""``/modalities/{id}/get`` and the ``DicomGetScu`` job, with a client that plays the peer's
C-STOREs into the ingest it is handed (no sockets)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from starlette.testclient import TestClient

from obelisk.core.levels import Level
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.jobs.model import StepOutcome
from obelisk.services.context import Services
from obelisk.services.dicom_client import MoveOutcome, Peer, Received
from tests.dicom_factory import make_dicom
from tests.unit.dicom.test_modality_routes import FakeClient


class Context:
    output_dir = Path("/nonexistent")

    def log(self, message: str) -> None:
        return None


class GetClient(FakeClient):
    """Answers each C-GET with one new instance, C-STOREd into ``receive``."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[tuple[Level, pydicom.Dataset, Received]] = []
        self.failed = 0

    def get(
        self, peer: Peer, level: Level, identifier: pydicom.Dataset, receive: Received
    ) -> MoveOutcome:
        self.gets.append((level, identifier, receive))
        number = len(self.gets)
        data = make_dicom(sop_uid=f"1.2.3.9.{number}", instance_number=number)
        receive.ingest.store(data, receive.origin)
        return MoveOutcome(completed=1, failed=self.failed)


@pytest.fixture
def fake() -> GetClient:
    return GetClient()


def test_get_stores_what_the_peer_sends(api: TestClient, fake: GetClient) -> None:
    body = {"Level": "Study", "Resources": [{"StudyInstanceUID": "1.2.3"}], "LocalAet": "ME"}
    answer = api.post("/modalities/pacs/get", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "Description": "REST API",
        "LocalAet": "ME",
        "Query": [{"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.3"}],
        "RemoteAet": "PACS",
    }
    level, identifier, receive = fake.gets[0]
    assert level is Level.STUDY and identifier.QueryRetrieveLevel == "STUDY"
    assert receive.origin.kind == "DicomProtocol" and receive.origin.remote_aet == "PACS"
    assert receive.origin.called_aet == "ME"
    assert "1.2.840.10008.1.2.1" in receive.syntaxes
    (instance,) = api.get("/instances").json()
    assert api.get(f"/instances/{instance}/metadata/Origin").text == "DicomProtocol"
    assert api.get(f"/instances/{instance}/metadata/RemoteAET").text == "PACS"
    assert "get" in api.get("/modalities/pacs").json()


def test_get_errors_are_those_of_move(api: TestClient, fake: GetClient) -> None:
    body = {"Level": "Study", "Resources": [{"StudyInstanceUID": "1.2.3"}]}
    assert api.post("/modalities/nope/get", json=body).status_code == 404
    assert api.post("/modalities/pacs/get", json={"Resources": []}).status_code == 400
    bad = {"Level": "Study", "Resources": ["1.2.3"]}
    assert api.post("/modalities/pacs/get", json=bad).status_code == 400
    assert api.post("/modalities/pacs/get", json={**body, "Level": "Nope"}).status_code == 400
    fake.failed = 1  # a failed sub-operation fails the job unless it is permissive
    failed = api.post("/modalities/pacs/get", json=body)
    assert failed.status_code == 500 and failed.json()["OrthancStatus"] == 9
    assert "C-GET from PACS: 1 sub-operations failed" in failed.json()["Details"]
    assert api.post("/modalities/pacs/get", json={**body, "Permissive": True}).status_code == 200


def test_get_job_resumes_from_its_snapshot(dicom_services: Services, fake: GetClient) -> None:
    network = dicom_services.network
    assert network is not None
    resources = [{"StudyInstanceUID": uid} for uid in ("1.2.1", "1.2.2", "1.2.3")]
    job = network.get_job("pacs", {"Level": "Study", "Resources": resources})
    snapshot = job.serialize()
    assert snapshot["Type"] == "DicomGetScu"
    snapshot["Position"] = 2  # as if the server stopped after two answers
    rebuilt = dicom_services.jobs._kinds["DicomGetScu"].factory(snapshot)  # the registered one
    assert rebuilt.step(Context()).outcome is StepOutcome.SUCCESS
    assert [str(g[1].StudyInstanceUID) for g in fake.gets] == ["1.2.3"]
    assert rebuilt.content()["Query"][0]["StudyInstanceUID"] == "1.2.1"
    assert "TargetAet" not in rebuilt.content()
    assert rebuilt.progress() == 1.0


def test_a_network_error_gives_the_job_its_details(
    dicom_services: Services, fake: GetClient
) -> None:
    network = dicom_services.network
    assert network is not None

    def refuse(*args: object) -> MoveOutcome:
        raise ObeliskError("Cannot associate with AET 'PACS'", code=ErrorCode.NetworkProtocol)

    fake.get = refuse  # type: ignore[method-assign]
    job = network.get_job("pacs", {"Level": "Patient", "Resources": [{"PatientID": "P"}]})
    with pytest.raises(ObeliskError) as raised:
        job.step(Context())
    assert raised.value.code is ErrorCode.NetworkProtocol
    assert raised.value.details == "Cannot associate with AET 'PACS'"
