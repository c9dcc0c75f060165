"""Storage commitment: the service with a fake DIMSE client, the REST routes in process, the
datasets of the adapter, and the routing of storage commitment associations to pynetdicom."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import build_context
from starlette.testclient import TestClient

from obelisk.dicom import pdu
from obelisk.dicom.direct_path import serves_directly
from obelisk.dicom.storage_commitment import (
    STORAGE_COMMITMENT,
    failures_in,
    references_in,
    report_dataset,
    request_dataset,
)
from obelisk.errors import ObeliskError
from obelisk.http.app import create_app
from obelisk.jobs.model import Job, StepOutcome
from obelisk.services.context import Services
from obelisk.services.dicom_client import Peer
from obelisk.services.storage_commitment import (
    Failure,
    FailureReason,
    Reference,
    Report,
    ReportStore,
    Status,
)
from tests.conftest import make_services
from tests.dicom_factory import CT_IMAGE_STORAGE, make_dicom

CT = CT_IMAGE_STORAGE
MR = "1.2.840.10008.5.1.4.1.1.4"


class FakeClient:
    def __init__(self) -> None:
        self.requests: list[tuple[Peer, str, list[Reference]]] = []
        self.reports: list[tuple[Peer, str, list[Reference], list[Failure]]] = []

    def request(self, peer: Peer, transaction_uid: str, references: Sequence[Reference]) -> None:
        self.requests.append((peer, transaction_uid, list(references)))

    def report(
        self,
        peer: Peer,
        transaction_uid: str,
        success: Sequence[Reference],
        failures: Sequence[Failure],
    ) -> None:
        self.reports.append((peer, transaction_uid, list(success), list(failures)))


@pytest.fixture
def services() -> Iterator[Services]:
    svc = make_services(
        DicomAet="OBELISK",
        DicomModalities={
            "peer": ["PEER", "10.0.0.1", 104],
            "closed": {"AET": "CLOSED", "Host": "h", "Port": 1, "AllowNAction": False},
        },
        StorageCommitmentReportsSize=2,
    )
    yield svc
    svc.close()


@pytest.fixture
def fake(services: Services) -> FakeClient:
    client = FakeClient()
    assert services.storage_commitment is not None
    services.storage_commitment.client = client
    services.storage_commitment._submit = _run_now  # the SCP job, synchronously
    return client


def _run_now(job: Job) -> str:
    while job.step(Context()).outcome is StepOutcome.CONTINUE:
        pass
    return "job"


class Context:
    output_dir = Path("/nonexistent")

    def log(self, message: str) -> None:
        return None


@pytest.fixture
def api(services: Services, fake: FakeClient) -> Iterator[TestClient]:
    with TestClient(
        create_app(services), client=("127.0.0.1", 50000), raise_server_exceptions=False
    ) as client:
        yield client


def test_report_store_forgets_the_least_recently_used() -> None:
    store = ReportStore(2)
    for uid in ("a", "b"):
        store.store(uid, Report("PEER"))
    store.get("a")  # now more recent than "b"
    store.store("c", Report("PEER"))
    assert len(store) == 2
    with pytest.raises(ObeliskError):
        store.get("b")
    assert store.get("a").status is Status.PENDING


def test_report_status() -> None:
    reference = Reference(CT, "1.2")
    assert Report("X", True, [reference]).status is Status.SUCCESS
    failure = Failure(reference, FailureReason.NO_SUCH_OBJECT_INSTANCE)
    assert Report("X", True, [], [failure]).status is Status.FAILURE


def test_scu_request_pending_then_report(api: TestClient, fake: FakeClient) -> None:
    uploaded = api.post("/instances", content=make_dicom(sop_uid="1.2.3.4.5")).json()
    body = {"Resources": [uploaded["ParentStudy"]], "DicomInstances": [[MR, "9.9"]], "Timeout": 5}
    answer = api.post("/modalities/peer/storage-commitment", json=body).json()
    uid = answer["ID"]
    assert answer["Path"] == f"/storage-commitment/{uid}"
    peer, sent_uid, references = fake.requests[0]
    assert (peer.aet, peer.host, peer.port, peer.local_aet, peer.timeout) == (
        "PEER",
        "10.0.0.1",
        104,
        "OBELISK",
        5,
    )
    assert sent_uid == uid and uid.startswith("2.25.")
    assert references == [Reference(CT, "1.2.3.4.5"), Reference(MR, "9.9")]
    assert api.get(f"/storage-commitment/{uid}").json() == {
        "RemoteAET": "PEER",
        "Status": "Pending",
    }
    refused = api.post(f"/storage-commitment/{uid}/remove")
    assert (refused.status_code, refused.json()["OrthancStatus"]) == (500, 6)

    services: Services = api.app.state.services  # type: ignore[attr-defined]
    assert services.storage_commitment is not None
    services.storage_commitment.record_report(uid, "PEER", [Reference(CT, "1.2.3.4.5")], [])
    assert api.get(f"/storage-commitment/{uid}").json()["Status"] == "Success"
    assert api.post(f"/storage-commitment/{uid}/remove").json() == {}
    assert api.get(f"/instances/{uploaded['ID']}").status_code == 404


def test_scp_looks_up_and_reports(services: Services, fake: FakeClient, api: TestClient) -> None:
    assert api.post("/instances", content=make_dicom(sop_uid="1.2.3.4.5")).status_code == 200
    service = services.storage_commitment
    assert service is not None
    references = [Reference(CT, "1.2.3.4.5"), Reference(CT, "7.7"), Reference(MR, "1.2.3.4.5")]
    service.accept_request("1.9", references, "peer", "CALLED")  # AETs compare without case
    peer, uid, success, failures = fake.reports[0]
    assert (peer.aet, peer.host, peer.local_aet, uid) == ("PEER", "10.0.0.1", "CALLED", "1.9")
    assert success == [references[0]]
    assert failures == [
        Failure(references[1], FailureReason.NO_SUCH_OBJECT_INSTANCE),
        Failure(references[2], FailureReason.CLASS_INSTANCE_CONFLICT),
    ]


def test_scp_access(services: Services) -> None:
    service = services.storage_commitment
    assert service is not None
    assert service.may_request("PEER", "1.1.1.1") and service.may_report("peer", "1.1.1.1")
    assert not service.may_request("CLOSED", "h") and service.may_report("CLOSED", "h")
    assert not service.may_request("STRANGER", "h")
    with pytest.raises(ObeliskError):
        service.accept_request("1.9", [], "STRANGER", "OBELISK")


def test_datasets_round_trip() -> None:
    ok, missing = Reference(CT, "1.2"), Reference(CT, "1.3")
    request = request_dataset("2.25.1", [ok, missing])
    assert references_in(request, "ReferencedSOPSequence") == [ok, missing]
    report = report_dataset("2.25.1", [ok], [Failure(missing, 0x0112)])
    assert references_in(report, "ReferencedSOPSequence") == [ok]
    assert failures_in(report) == [Failure(missing, 0x0112)]
    assert "FailedSOPSequence" not in report_dataset("2.25.1", [ok], [])


def _request(*abstracts: str) -> pdu.AssociateRequest:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "PEER"
    primitive.called_ae_title = "OBELISK"
    primitive.presentation_context_definition_list = [
        _context(i, uid) for i, uid in enumerate(abstracts)
    ]
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import MaximumLengthNotification

    item = MaximumLengthNotification()
    item.maximum_length_received = 16384
    primitive.user_information = [item]
    rq = A_ASSOCIATE_RQ()
    rq.from_primitive(primitive)
    return pdu.parse_associate_rq(rq.encode()[6:])


def _context(index: int, uid: str) -> Any:
    context = build_context(uid)
    context.context_id = 2 * index + 1
    return context


def test_storage_commitment_associations_go_to_pynetdicom() -> None:
    assert serves_directly(_request(CT), frozenset({CT}))
    assert not serves_directly(_request(CT, STORAGE_COMMITMENT), frozenset({CT}))
