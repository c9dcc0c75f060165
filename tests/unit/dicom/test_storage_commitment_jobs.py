"""Storage commitment as jobs, as Orthanc 1.10.1: the trailing N-ACTION of a
``DicomModalityStore`` job with ``"StorageCommitment": true``, and the ``StorageCommitmentScp``
job that answers an N-ACTION received. Fake DICOM and commitment clients; the engine for real."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from obelisk.config import load_settings
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.http.app import create_app
from obelisk.index.sqlite import SqliteIndex
from obelisk.jobs.info import JobState
from obelisk.jobs.model import StepOutcome
from obelisk.services.context import Services, build_services
from obelisk.services.dicom_client import Peer
from obelisk.services.dicom_jobs import StoreScuJob
from obelisk.services.ingest import Origin
from obelisk.services.storage_commitment import (
    SCP_TYPE,
    Failure,
    FailureReason,
    Reference,
    StorageCommitmentScpJob,
)
from obelisk.storage.filesystem import FilesystemStorage
from tests.conftest import make_services
from tests.dicom_factory import CT_IMAGE_STORAGE, make_dicom
from tests.unit.dicom.test_modality_routes import FakeClient, FakeSession
from tests.unit.dicom.test_storage_commitment import FakeClient as CommitmentRecorder

CT = CT_IMAGE_STORAGE
MODALITIES = {"pacs": ["PACS", "127.0.0.1", 11112]}


class Context:
    output_dir = Path("/nonexistent")

    def log(self, message: str) -> None:
        return None


class Recorder(CommitmentRecorder):
    """The DICOM client and the commitment client at once, recording in one ``events`` list
    (so that the order of C-STOREs and N-ACTION shows); ``refuse`` fails the next N- request."""

    def __init__(self) -> None:
        super().__init__()
        self.dicom = FakeClient()
        self.events: list[str] = []
        self.refuse: ObeliskError | None = None
        recorder = self

        class Session(FakeSession):
            def send(self, data: bytes, *, move_originator: tuple[str, int] | None = None) -> int:
                recorder.events.append("C-STORE")
                return super().send(data, move_originator=move_originator)

        self.dicom.open_store = lambda peer, contexts: Session(self.dicom.sent)  # type: ignore[method-assign]

    def request(self, peer: Peer, transaction_uid: str, references: Sequence[Reference]) -> None:
        self.events.append("N-ACTION")
        if self.refuse is not None:
            raise self.refuse
        super().request(peer, transaction_uid, references)

    def report(
        self,
        peer: Peer,
        transaction_uid: str,
        success: Sequence[Reference],
        failures: Sequence[Failure],
    ) -> None:
        self.events.append("N-EVENT-REPORT")
        if self.refuse is not None:
            raise self.refuse
        super().report(peer, transaction_uid, success, failures)


def plug(services: Services, recorder: Recorder) -> None:
    assert services.network is not None and services.storage_commitment is not None
    services.network.client = recorder.dicom
    services.storage_commitment.client = recorder


def refused() -> ObeliskError:
    return ObeliskError(
        code=ErrorCode.NetworkProtocol,
        details="Storage commitment - The request cannot be handled by remote AET: PACS",
        http_status=500,
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def services(recorder: Recorder) -> Iterator[Services]:
    svc = make_services(DicomModalities=MODALITIES)
    plug(svc, recorder)
    svc.start()
    yield svc
    svc.close()


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services), client=("127.0.0.1", 50000)) as client:
        yield client


def upload(api: TestClient, count: int) -> dict[str, Any]:
    answer: dict[str, Any] = {}
    for number in range(1, count + 1):
        data = make_dicom(sop_uid=f"1.2.3.4.{number}", instance_number=number)
        answer = api.post("/instances", content=data).json()
    return answer


# -- DicomModalityStore with StorageCommitment -----------------------------------------------
def test_store_job_requests_commitment_once_the_instances_are_sent(
    api: TestClient, recorder: Recorder
) -> None:
    study = upload(api, 2)["ParentStudy"]
    body = {"Resources": [study], "StorageCommitment": True, "LocalAet": "LOCALX"}
    content = api.post("/modalities/pacs/store", json=body).json()
    uid = content.pop("StorageCommitmentTransactionUID")
    assert uid.startswith("2.25.")
    assert content == {
        "Description": "REST API",
        "FailedInstancesCount": 0,
        "InstancesCount": 2,
        "LocalAet": "LOCALX",
        "ParentResources": [study],
        "RemoteAet": "PACS",
    }
    assert recorder.events == ["C-STORE", "C-STORE", "N-ACTION"]
    peer, sent_uid, references = recorder.requests[0]
    assert (peer.aet, peer.local_aet, sent_uid) == ("PACS", "LOCALX", uid)
    assert sorted(references, key=lambda r: r.sop_instance_uid) == [
        Reference(CT, "1.2.3.4.1"),
        Reference(CT, "1.2.3.4.2"),
    ]
    # The job does not wait for the report: it is pending until the modality sends it.
    assert api.get(f"/storage-commitment/{uid}").json() == {
        "RemoteAET": "PACS",
        "Status": "Pending",
    }
    job = api.post("/modalities/pacs/store", json={**body, "Asynchronous": True}).json()
    info = api.get(job["Path"]).json()
    while info["State"] not in ("Success", "Failure"):
        info = api.get(job["Path"]).json()
    assert info["State"] == "Success" and info["Progress"] == 100
    assert info["Content"]["StorageCommitmentTransactionUID"] not in ("", uid)


def test_store_job_without_commitment_has_no_transaction(
    api: TestClient, recorder: Recorder
) -> None:
    study = upload(api, 1)["ParentStudy"]
    for body in ({"Resources": [study]}, {"Resources": [study], "StorageCommitment": False}):
        content = api.post("/modalities/pacs/store", json=body).json()
        assert "StorageCommitmentTransactionUID" not in content
    assert "N-ACTION" not in recorder.events


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_store_commitment_must_be_a_boolean(api: TestClient, value: Any) -> None:
    study = upload(api, 1)["ParentStudy"]
    body = {"Resources": [study], "StorageCommitment": value}
    answer = api.post("/modalities/pacs/store", json=body)
    assert (answer.status_code, answer.json()["OrthancStatus"]) == (400, 5)
    assert answer.json()["Message"] == "Bad type for a parameter"


def test_store_job_fails_when_the_modality_refuses_the_commitment(
    api: TestClient, recorder: Recorder
) -> None:
    study = upload(api, 2)["ParentStudy"]
    recorder.refuse = refused()
    body = {"Resources": [study], "StorageCommitment": True}
    answer = api.post("/modalities/pacs/store", json=body)
    assert answer.status_code == 500
    assert answer.json()["OrthancStatus"] == 9
    assert answer.json()["Details"] == (
        "Storage commitment - The request cannot be handled by remote AET: PACS"
    )
    job = api.post("/modalities/pacs/store", json={**body, "Asynchronous": True}).json()
    info = _completed(api, job["Path"])
    assert (info["State"], info["ErrorCode"]) == ("Failure", 9)
    assert info["ErrorDetails"].startswith("Storage commitment - The request cannot")
    assert info["Progress"] == 67  # the instances are sent, the N-ACTION is not
    assert info["Content"]["StorageCommitmentTransactionUID"].startswith("2.25.")
    # Permissive: the refusal is logged and the job succeeds, as in Orthanc.
    permissive = api.post("/modalities/pacs/store", json={**body, "Permissive": True}).json()
    assert permissive["FailedInstancesCount"] == 0


def test_store_job_with_commitment_and_no_instance(api: TestClient, recorder: Recorder) -> None:
    content = api.post(
        "/modalities/pacs/store", json={"Resources": [], "StorageCommitment": True}
    ).json()
    assert content["InstancesCount"] == 0
    assert content["StorageCommitmentTransactionUID"].startswith("2.25.")
    assert recorder.events == []  # Orthanc sends no N-ACTION for an empty job


def test_store_job_with_commitment_resumes_from_its_snapshot(
    services: Services, recorder: Recorder
) -> None:
    for number in (1, 2, 3):
        services.ingest.store(make_dicom(sop_uid=f"1.2.3.4.{number}"), Origin())
    assert services.network is not None
    job = services.network.store_job(
        "pacs", {"Resources": [_study(services)], "StorageCommitment": True}
    )
    snapshot = job.serialize()
    uid = snapshot["TransactionUid"]
    assert snapshot["StorageCommitment"] is True and uid.startswith("2.25.")
    snapshot["Position"] = 3  # as if the server stopped once every instance was sent
    engine = services.jobs
    rebuilt = engine._kinds["DicomModalityStore"].factory(snapshot)  # the registered factory
    assert isinstance(rebuilt, StoreScuJob)
    assert rebuilt.progress() == 0.75
    assert rebuilt.step(Context()).outcome is StepOutcome.SUCCESS
    assert recorder.events == ["N-ACTION"]  # no instance sent again
    assert recorder.requests[0][1] == uid and len(recorder.requests[0][2]) == 3
    assert rebuilt.progress() == 1.0
    done = rebuilt.serialize()
    assert done["CommitmentRequested"] is True
    again = engine._kinds["DicomModalityStore"].factory(done)
    assert again.step(Context()).outcome is StepOutcome.SUCCESS
    assert recorder.events == ["N-ACTION"]  # asked once only
    again.reset()  # resubmit: everything again, under the same transaction UID (Orthanc)
    assert again.content()["StorageCommitmentTransactionUID"] == uid
    assert again.serialize()["CommitmentRequested"] is False


def _study(services: Services) -> str:
    from obelisk.core.levels import Level

    return services.index.list_public_ids(Level.STUDY)[0]


def _completed(api: TestClient, path: str) -> dict[str, Any]:
    for _ in range(500):
        info: dict[str, Any] = api.get(path).json()
        if info["State"] in ("Success", "Failure"):
            return info
        import time

        time.sleep(0.01)
    raise AssertionError(f"{path} did not complete")


# -- StorageCommitmentScp ----------------------------------------------------------------------
def test_n_action_is_answered_by_a_job(
    api: TestClient, services: Services, recorder: Recorder
) -> None:
    upload(api, 1)
    service = services.storage_commitment
    assert service is not None
    references = [Reference(CT, "1.2.3.4.1"), Reference(CT, "9.9")]
    job_id = service.accept_request("1.2.9.1", references, "pacs", "CALLED")
    info = services.jobs.wait(job_id, 10)
    assert info is not None and info.state is JobState.SUCCESS
    expanded = next(j for j in api.get("/jobs?expand").json() if j["ID"] == job_id)
    assert expanded["Type"] == "StorageCommitmentScp" == SCP_TYPE
    assert expanded["Content"] == {
        "CalledAet": "CALLED",
        "Description": "",
        "RemoteAet": "PACS",
        "TransactionUid": "1.2.9.1",
    }
    assert (expanded["Progress"], expanded["Priority"]) == (100, 0)
    peer, uid, success, failures = recorder.reports[0]
    assert (peer.aet, peer.port, peer.local_aet, uid) == ("PACS", 11112, "CALLED", "1.2.9.1")
    assert success == [references[0]]
    assert failures == [Failure(references[1], FailureReason.NO_SUCH_OBJECT_INSTANCE)]


def test_scp_job_fails_when_the_report_cannot_be_sent(
    services: Services, recorder: Recorder
) -> None:
    recorder.refuse = ObeliskError(
        code=ErrorCode.NetworkProtocol, details="Cannot associate with AET 'PACS'"
    )
    service = services.storage_commitment
    assert service is not None
    job_id = service.accept_request("1.2.9.2", [Reference(CT, "9.9")], "PACS", "OBELISK")
    info = services.jobs.wait(job_id, 10)
    assert info is not None and info.state is JobState.FAILURE
    assert info.error_code is ErrorCode.NetworkProtocol
    assert info.error_details == "Cannot associate with AET 'PACS'"
    assert info.progress_percent == 67  # set up, looked up, not reported (as Orthanc)


def test_scp_job_resumes_with_its_lookups_so_far(services: Services, recorder: Recorder) -> None:
    service = services.storage_commitment
    assert service is not None
    snapshot = {
        "RemoteModality": {
            "AET": "PACS",
            "Host": "127.0.0.1",
            "Port": 11112,
            "LocalAet": "OBELISK",
            "Timeout": 10,
        },
        "CalledAet": "OBELISK",
        "TransactionUid": "1.2.9.3",
        "References": [[CT, "7.7"], [CT, "8.8"]],
        "Position": 2,  # set up, first instance looked up (and found, then)
        "Results": [0],
    }
    job = services.jobs._kinds[SCP_TYPE].factory(snapshot)  # the registered factory
    assert isinstance(job, StorageCommitmentScpJob)
    assert job.progress() == 0.5
    assert job.step(Context()).outcome is StepOutcome.CONTINUE  # the last lookup
    assert job.serialize()["Results"] == [0, int(FailureReason.NO_SUCH_OBJECT_INSTANCE)]
    assert job.step(Context()).outcome is StepOutcome.SUCCESS  # the report
    _, _, success, failures = recorder.reports[0]
    assert success == [Reference(CT, "7.7")]  # not looked up again
    assert failures == [Failure(Reference(CT, "8.8"), 0x0112)]
    job.reset()
    assert (job.position, job.results, job.progress()) == (0, [], 0.0)


def test_both_jobs_survive_a_restart(tmp_path: Path) -> None:
    def server() -> Services:
        settings = load_settings(None, {"StableAge": 1, "DicomModalities": MODALITIES})
        index = SqliteIndex(str(tmp_path / "index.db"))
        return build_services(settings, index, FilesystemStorage(tmp_path / "storage"))

    first = server()
    first.ingest.store(make_dicom(sop_uid="1.2.3.4.1"), Origin())
    assert first.network is not None and first.storage_commitment is not None
    store = first.network.store_job(
        "pacs", {"Resources": [_study(first)], "StorageCommitment": True}
    )
    store_id = first.jobs.submit(store)
    uid = first.jobs.info(store_id).content["StorageCommitmentTransactionUID"]  # type: ignore[union-attr]
    scp_id = first.storage_commitment.accept_request(
        "1.2.9.4", [Reference(CT, "1.2.3.4.1")], "PACS", "OBELISK"
    )
    first.close()  # never started: both jobs are saved, Pending

    recorder = Recorder()
    second = server()
    plug(second, recorder)
    second.start()
    try:
        for job_id in (store_id, scp_id):
            info = second.jobs.wait(job_id, 10)
            assert info is not None and info.state is JobState.SUCCESS, info
        assert recorder.requests[0][1] == uid
        assert recorder.reports[0][1:] == ("1.2.9.4", [Reference(CT, "1.2.3.4.1")], [])
        assert second.jobs.info(scp_id).type_name == SCP_TYPE  # type: ignore[union-attr]
    finally:
        second.close()
