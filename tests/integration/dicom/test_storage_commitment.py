"""Storage commitment against a pynetdicom modality (AET ``PEER``) started by the test.

As SCP: the peer sends an N-ACTION, the server answers it and reports back on a new association
to the peer's SCP, from a ``StorageCommitmentScp`` job. As SCU:
``POST /modalities/peer/storage-commitment``, or a ``/store`` job with ``StorageCommitment``, sends
the N-ACTION; the peer reports on a new association to the server, as Orthanc 1.10.1 expects.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, build_role, evt

from tests.integration.dicom.conftest import AET, start_server
from tests.integration.server_process import ObeliskProcess, free_port

SC = "1.2.840.10008.1.20.1"
SC_INSTANCE = "1.2.840.10008.1.20.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"


class Modality:
    """Answers N-ACTION (success for the UIDs it holds in ``known``, 0x0112 for the others)
    with a report on a new association, and keeps the reports it receives."""

    def __init__(self, port: int) -> None:
        self.server_port = 0
        self.known: set[str] = set()
        self.reports: queue.Queue[tuple[int, str, Dataset]] = queue.Queue()
        #: What it received, in order: ``("C-STORE", sop uid)``, ``("N-ACTION", transaction)``.
        self.events: list[tuple[str, str]] = []
        #: The status of its N-ACTION answers (0x0110 to refuse).
        self.action_status = 0
        self.ae = AE(ae_title="PEER")
        self.ae.supported_contexts = StoragePresentationContexts
        self.ae.add_supported_context(SC, scu_role=True, scp_role=True)
        handlers: list[Any] = [
            (evt.EVT_N_ACTION, self._on_action),
            (evt.EVT_N_EVENT_REPORT, self._on_report),
            (evt.EVT_C_STORE, self._on_store),
        ]
        self.server = self.ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)

    def _on_report(self, event: evt.Event) -> tuple[int, None]:
        calling = str(event.assoc.requestor.ae_title).strip()
        self.reports.put((int(event.event_type or 0), calling, event.event_information))
        return 0, None

    def _on_store(self, event: evt.Event) -> int:
        self.events.append(("C-STORE", str(getattr(event.request, "AffectedSOPInstanceUID", ""))))
        return 0

    def _on_action(self, event: evt.Event) -> tuple[int, None]:
        information = event.action_information
        self.events.append(("N-ACTION", str(information.TransactionUID)))
        if self.action_status:
            return self.action_status, None
        threading.Thread(target=self._answer, args=(information,), daemon=True).start()
        return 0, None

    def _answer(self, information: Dataset) -> None:
        report = Dataset()
        report.TransactionUID = information.TransactionUID
        report.ReferencedSOPSequence = []
        failed = []
        for item in information.ReferencedSOPSequence:
            if item.ReferencedSOPInstanceUID in self.known:
                report.ReferencedSOPSequence.append(item)
            else:
                item.FailureReason = 0x0112
                failed.append(item)
        if failed:
            report.FailedSOPSequence = failed
        assoc = self.ae.associate(
            "127.0.0.1",
            self.server_port,
            ae_title=AET,
            contexts=[_context()],
            ext_neg=[build_role(SC, scp_role=True)],
        )
        assert assoc.is_established
        assoc.send_n_event_report(report, 2 if failed else 1, SC, SC_INSTANCE)
        assoc.release()

    def next_report(self) -> tuple[int, str, Dataset]:
        return self.reports.get(timeout=15)


def _context() -> Any:
    from pynetdicom.presentation import build_context

    return build_context(SC)


@pytest.fixture(scope="module")
def modality_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def modality(modality_port: int) -> Iterator[Modality]:
    peer = Modality(modality_port)
    yield peer
    peer.server.shutdown()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, modality: Modality, modality_port: int
) -> Iterator[ObeliskProcess]:
    process = start_server(
        tmp_path_factory.mktemp("commitment"),
        {
            "DicomModalities": {
                "peer": ["PEER", "127.0.0.1", modality_port],
                "closed": {
                    "AET": "CLOSED",
                    "Host": "127.0.0.1",
                    "Port": modality_port,
                    "AllowStorageCommitment": False,
                },
            },
            "StorageCommitmentReportsSize": 3,
        },
    )
    modality.server_port = int(process.config["DicomPort"])
    yield process
    process.stop()


@pytest.fixture(scope="module")
def stored(server: ObeliskProcess, dicom_files: list[Path]) -> list[dict[str, str]]:
    """The instances uploaded: their ``ID``, ``SOPInstanceUID``."""
    found = []
    for path in dicom_files[:3]:
        answer = httpx.post(f"{server.url}/instances", content=path.read_bytes()).json()
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        found.append({"ID": answer["ID"], "SOPInstanceUID": uid})
    return found


def n_action(server: ObeliskProcess, aet: str, refs: list[tuple[str, str]], uid: str) -> Dataset:
    ae = AE(ae_title=aet)
    ae.add_requested_context(SC)
    assoc = ae.associate("127.0.0.1", int(server.config["DicomPort"]), ae_title=AET)
    assert assoc.is_established
    request = Dataset()
    request.TransactionUID = uid
    items = []
    for sop_class, sop_instance in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        items.append(item)
    request.ReferencedSOPSequence = items
    status, _ = assoc.send_n_action(request, 1, SC, SC_INSTANCE)
    if assoc.is_established:
        assoc.release()
    return status


def test_scp_reports_successes_and_failures(
    server: ObeliskProcess, modality: Modality, stored: list[dict[str, str]]
) -> None:
    refs = [(CT, stored[0]["SOPInstanceUID"]), (CT, "1.2.3.999"), (MR, stored[1]["SOPInstanceUID"])]
    assert n_action(server, "PEER", refs, "1.2.3.4.1").Status == 0
    event_type, calling, report = modality.next_report()
    assert (event_type, calling, report.TransactionUID) == (2, AET, "1.2.3.4.1")
    success = [
        (i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID) for i in report.ReferencedSOPSequence
    ]
    assert success == [refs[0]]
    failed = [
        (i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID, i.FailureReason)
        for i in report.FailedSOPSequence
    ]
    assert failed == [(*refs[1], 0x0112), (*refs[2], 0x0119)]


def test_scp_all_success(
    server: ObeliskProcess, modality: Modality, stored: list[dict[str, str]]
) -> None:
    refs = [(CT, s["SOPInstanceUID"]) for s in stored]
    assert n_action(server, "PEER", refs, "1.2.3.4.2").Status == 0
    event_type, _, report = modality.next_report()
    assert event_type == 1
    assert len(report.ReferencedSOPSequence) == 3
    assert "FailedSOPSequence" not in report


@pytest.mark.parametrize("aet", ["STRANGER", "CLOSED"])
def test_scp_refuses_peers_not_allowed(
    server: ObeliskProcess, modality: Modality, aet: str
) -> None:
    """Orthanc drops the association: no N-ACTION answer, no report."""
    status = n_action(server, aet, [(CT, "1.2.3")], "1.2.3.4.3")
    assert "Status" not in status
    with pytest.raises(queue.Empty):
        modality.reports.get(timeout=1)


def test_scu_request_report_and_remove(
    server: ObeliskProcess, modality: Modality, stored: list[dict[str, str]]
) -> None:
    url = server.url
    modality.known = {stored[2]["SOPInstanceUID"]}
    body = {
        "DicomInstances": [
            {"SOPClassUID": CT, "SOPInstanceUID": "1.2.4"},
            [CT, stored[2]["SOPInstanceUID"]],
        ]
    }
    answer = httpx.post(f"{url}/modalities/peer/storage-commitment", json=body).json()
    uid = answer["ID"]
    assert uid.startswith("2.25.") and answer["Path"] == f"/storage-commitment/{uid}"
    report = _wait(url, uid)
    assert report == {
        "Failures": [
            {
                "Description": "One or more of the elements in the Referenced SOP Instance "
                "Sequence was not available",
                "FailureReason": 274,
                "SOPClassUID": CT,
                "SOPInstanceUID": "1.2.4",
            }
        ],
        "RemoteAET": "PEER",
        "Status": "Failure",
        "Success": [{"SOPClassUID": CT, "SOPInstanceUID": stored[2]["SOPInstanceUID"]}],
    }
    refused = httpx.post(f"{url}/storage-commitment/{uid}/remove")
    assert (refused.status_code, refused.json()["OrthancStatus"]) == (500, 6)

    answer = httpx.post(
        f"{url}/modalities/peer/storage-commitment", json={"Resources": [stored[2]["ID"]]}
    ).json()
    report = _wait(url, answer["ID"])
    assert report["Status"] == "Success" and report["Failures"] == []
    assert httpx.post(f"{url}{answer['Path']}/remove").json() == {}
    assert httpx.get(f"{url}/instances/{stored[2]['ID']}").status_code == 404


def _wait(url: str, uid: str) -> dict[str, Any]:
    for _ in range(150):
        report: dict[str, Any] = httpx.get(f"{url}/storage-commitment/{uid}").json()
        if report["Status"] != "Pending":
            return report
        threading.Event().wait(0.1)
    raise AssertionError("no storage commitment report")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("", 400, 15),
        ("[]", 400, 15),
        ("{}", 400, 15),
        ('{"Resources": "x"}', 400, 15),
        ('{"Resources": ["nope"]}', 404, 17),
        ('{"DicomInstances": [1]}', 400, 15),
        ('{"DicomInstances": [{"SOPClassUID": "1"}]}', 400, 15),
        ('{"DicomInstances": [["", "1"]]}', 400, 3),
    ],
)
def test_scu_bad_requests(server: ObeliskProcess, body: str, status: int, code: int) -> None:
    answer = httpx.post(f"{server.url}/modalities/peer/storage-commitment", content=body)
    assert (answer.status_code, answer.json()["OrthancStatus"]) == (status, code)


def test_unknown_modality_and_report(server: ObeliskProcess) -> None:
    answer = httpx.post(f"{server.url}/modalities/nope/storage-commitment", json={"Resources": []})
    assert (answer.status_code, answer.json()["OrthancStatus"]) == (404, 7)
    for answer in (
        httpx.get(f"{server.url}/storage-commitment/nope"),
        httpx.post(f"{server.url}/storage-commitment/nope/remove"),
    ):
        assert (answer.status_code, answer.json()["OrthancStatus"]) == (404, 7)


def _job(url: str, job_id: str) -> dict[str, Any]:
    for _ in range(150):
        info: dict[str, Any] = httpx.get(f"{url}/jobs/{job_id}").json()
        if info["State"] in ("Success", "Failure"):
            return info
        threading.Event().wait(0.1)
    raise AssertionError(f"job {job_id} did not complete")


def test_store_job_requests_commitment_after_sending(
    server: ObeliskProcess, modality: Modality, stored: list[dict[str, str]]
) -> None:
    """As Orthanc: the job sends, then asks (N-ACTION) and ends; the report comes later."""
    url = server.url
    sent = stored[:2]
    modality.known = {s["SOPInstanceUID"] for s in sent}
    modality.events.clear()
    body = {"Resources": [s["ID"] for s in sent], "StorageCommitment": True}
    content = httpx.post(f"{url}/modalities/peer/store", json=body, timeout=30).json()
    uid = content["StorageCommitmentTransactionUID"]
    assert uid.startswith("2.25.") and content["InstancesCount"] == 2
    assert sorted(modality.events) == sorted(
        [("C-STORE", s["SOPInstanceUID"]) for s in sent] + [("N-ACTION", uid)]
    )
    assert modality.events[-1] == ("N-ACTION", uid)
    report = _wait(url, uid)
    assert report["Status"] == "Success" and report["RemoteAET"] == "PEER"
    assert sorted(i["SOPInstanceUID"] for i in report["Success"]) == sorted(modality.known)


def test_store_job_fails_when_the_commitment_is_refused(
    server: ObeliskProcess, modality: Modality, stored: list[dict[str, str]]
) -> None:
    url = server.url
    modality.action_status = 0x0110
    try:
        body = {"Resources": [stored[0]["ID"]], "StorageCommitment": True, "Asynchronous": True}
        info = _job(url, httpx.post(f"{url}/modalities/peer/store", json=body).json()["ID"])
    finally:
        modality.action_status = 0
    assert (info["State"], info["ErrorCode"], info["Type"]) == ("Failure", 9, "DicomModalityStore")
    assert info["ErrorDetails"] == (
        "Storage commitment - The request cannot be handled by remote AET: PEER"
    )
    uid = info["Content"]["StorageCommitmentTransactionUID"]
    assert httpx.get(f"{url}/storage-commitment/{uid}").json()["Status"] == "Pending"


def _scp_job(url: str, transaction_uid: str) -> dict[str, Any]:
    for _ in range(150):
        for info in httpx.get(f"{url}/jobs?expand").json():
            content = info["Content"]
            if info["Type"] == "StorageCommitmentScp" and (
                content["TransactionUid"] == transaction_uid
                and info["State"] in ("Success", "Failure")
            ):
                return dict(info)
        threading.Event().wait(0.1)
    raise AssertionError(f"no StorageCommitmentScp job for {transaction_uid}")


def test_scp_request_is_a_job(
    server: ObeliskProcess, modality: Modality, stored: list[dict[str, str]]
) -> None:
    assert n_action(server, "PEER", [(CT, stored[0]["SOPInstanceUID"])], "1.2.3.4.10").Status == 0
    assert modality.next_report()[2].TransactionUID == "1.2.3.4.10"
    info = _scp_job(server.url, "1.2.3.4.10")
    assert info["Content"] == {
        "CalledAet": AET,
        "Description": "",
        "RemoteAet": "PEER",
        "TransactionUid": "1.2.3.4.10",
    }
    assert (info["State"], info["Progress"], info["Priority"]) == ("Success", 100, 0)


def test_scp_job_fails_when_the_modality_cannot_be_reached(
    server: ObeliskProcess, modality: Modality
) -> None:
    url = server.url
    gone = {"AET": "GONE", "Host": "127.0.0.1", "Port": free_port()}
    assert httpx.put(f"{url}/modalities/gone", json=gone).status_code == 200
    try:
        assert n_action(server, "GONE", [(CT, "1.2.3")], "1.2.3.4.11").Status == 0
        info = _scp_job(url, "1.2.3.4.11")
    finally:
        httpx.delete(f"{url}/modalities/gone")
    assert (info["State"], info["ErrorCode"], info["Progress"]) == ("Failure", 9, 67)
    assert info["Content"]["RemoteAet"] == "GONE"
