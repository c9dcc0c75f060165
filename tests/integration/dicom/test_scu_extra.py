"""Orthanc 1.10.1's remaining DICOM routes against a real server and real associations:
``/tools/dicom-echo``, ``/modalities/{id}/find-worklist``, the hierarchical
``/modalities/{id}/find`` (against a pynetdicom worklist + query SCP started here), and the
C-STORE SCP's runtime settings ``/tools/accepted-transfer-syntaxes`` and
``/tools/unknown-sop-class-accepted`` on both receive paths (direct path; pynetdicom when the
association carries a user identity).

The answers expected here were checked against a real Orthanc 1.10.1 with the same peer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pynetdicom import AE, evt
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.presentation import build_context

from tests.integration.dicom.conftest import AET
from tests.integration.server_process import ObeliskProcess, free_port

VERIFICATION = "1.2.840.10008.1.1"
WORKLIST = "1.2.840.10008.5.1.4.31"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
UNKNOWN_SOP_CLASS = "1.2.826.0.1.3680043.8.498.77"
PATIENTS = [("P100", "DOE^JOHN"), ("P200", "SMITH^ANN")]


def _worklist_items() -> list[pydicom.Dataset]:
    items = []
    for n in range(2):
        item = pydicom.Dataset()
        item.PatientName = f"WL^PAT{n}"
        item.PatientID = f"WLP{n}"
        item.AccessionNumber = f"ACC{n}"
        step = pydicom.Dataset()
        step.Modality = "CT"
        step.ScheduledStationAETitle = "CTSCAN"
        step.ScheduledProcedureStepStartDate = "20240101"
        item.ScheduledProcedureStepSequence = [step]
        items.append(item)
    return items


class QueryPeer:
    """``PEER``: answers worklist C-FINDs (the requested keys of two items) and patient/study/
    series C-FINDs of a fixed hierarchy; records the identifiers it receives."""

    def __init__(self, port: int) -> None:
        self.finds: list[tuple[str, pydicom.Dataset]] = []
        self.ae = AE(ae_title="PEER")
        for uid in (VERIFICATION, WORKLIST, PATIENT_ROOT_FIND, STUDY_ROOT_FIND):
            self.ae.add_supported_context(uid)
        handlers: Any = [(evt.EVT_C_FIND, self._on_find)]
        self.server = self.ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)

    def stop(self) -> None:
        self.server.shutdown()

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int, pydicom.Dataset | None]]:
        identifier = event.identifier
        model = str(event.request.AffectedSOPClassUID)
        self.finds.append((model, identifier))
        if model == WORKLIST:
            for item in _worklist_items():
                answer = pydicom.Dataset()
                for element in identifier:
                    answer.add(item.get(element.tag, element))
                yield 0xFF00, answer
            return
        level = str(identifier.QueryRetrieveLevel)
        wanted_patient = str(identifier.get("PatientID", "") or "")
        for patient_id, name in PATIENTS:
            if wanted_patient and wanted_patient != patient_id:
                continue
            if level == "PATIENT":
                yield 0xFF00, _answer(PatientID=patient_id, PatientName=name, level=level)
            elif level == "STUDY":
                for n in range(2):
                    uid = f"1.2.3.{patient_id[1:]}.{n}"
                    yield 0xFF00, _answer(PatientID=patient_id, StudyInstanceUID=uid, level=level)
            elif level == "SERIES":
                study = str(identifier.StudyInstanceUID)
                yield 0xFF00, _answer(StudyInstanceUID=study, SeriesInstanceUID=f"{study}.1",
                                      Modality="CT", level=level)  # fmt: skip


def _answer(level: str, **values: str) -> pydicom.Dataset:
    answer = pydicom.Dataset()
    answer.QueryRetrieveLevel = level
    for keyword, value in values.items():
        setattr(answer, keyword, value)
    return answer


@pytest.fixture(scope="module")
def query_peer(server: ObeliskProcess, peer_port: int) -> Iterator[QueryPeer]:
    running = QueryPeer(peer_port)
    yield running
    running.stop()


def _error(answer: httpx.Response) -> tuple[int, int]:
    return answer.status_code, int(answer.json()["OrthancStatus"])


# -- /tools/dicom-echo ------------------------------------------------------------------------


def test_dicom_echo_to_an_unregistered_peer(
    server: ObeliskProcess, query_peer: QueryPeer, peer_port: int
) -> None:
    url = f"{server.url}/tools/dicom-echo"
    peer = {"AET": "PEER", "Host": "127.0.0.1", "Port": peer_port}
    assert httpx.post(url, json=peer).json() == {}
    assert httpx.post(url, json=["PEER", "127.0.0.1", peer_port]).json() == {}
    before = len(query_peer.finds)
    assert httpx.post(url, json={**peer, "CheckFind": True, "Timeout": 5}).json() == {}
    model, identifier = query_peer.finds[before]
    assert model == STUDY_ROOT_FIND and identifier.QueryRetrieveLevel == "STUDY"
    closed = {"AET": "PEER", "Host": "127.0.0.1", "Port": free_port(), "Timeout": 2}
    assert _error(httpx.post(url, json=closed, timeout=30)) == (500, 9)
    assert _error(httpx.post(url, json={"AET": "PEER", "Host": "127.0.0.1"})) == (400, 15)
    assert _error(httpx.post(url, content=b"")) == (400, 15)
    assert _error(httpx.post(url, json={**peer, "Manufacturer": "Bogus"})) == (400, 3)


# -- /modalities/{id}/find-worklist -----------------------------------------------------------


def test_find_worklist_formats(server: ObeliskProcess, query_peer: QueryPeer) -> None:
    url = f"{server.url}/modalities/peer/find-worklist"
    old_style = httpx.post(url, json={"PatientName": "", "PatientID": "", "AccessionNumber": ""})
    assert old_style.json() == [
        {"AccessionNumber": f"ACC{n}", "PatientID": f"WLP{n}", "PatientName": f"WL^PAT{n}",
         "SpecificCharacterSet": "ISO_IR 100"}
        for n in range(2)
    ]  # fmt: skip
    model, identifier = query_peer.finds[-1]
    assert model == WORKLIST and identifier.SpecificCharacterSet == "ISO_IR 100"
    assert "QueryRetrieveLevel" not in identifier
    query = {"PatientID": "", "ScheduledProcedureStepSequence": [{"Modality": "CT"}]}
    simplified = httpx.post(url, json={"Query": query}).json()
    assert simplified[0]["ScheduledProcedureStepSequence"] == [
        {"Modality": "CT", "ScheduledProcedureStepStartDate": "20240101",
         "ScheduledStationAETitle": "CTSCAN"}
    ]  # fmt: skip
    short = httpx.post(url, json={"Query": {"PatientID": ""}, "Short": True, "Full": True})
    assert short.json()[1] == {"0008,0005": "ISO_IR 100", "0010,0020": "WLP1"}
    full = httpx.post(url, json={"Query": {"PatientID": ""}, "Full": True, "Timeout": 5})
    assert full.json()[0]["0010,0020"] == {"Name": "PatientID", "Type": "String", "Value": "WLP0"}


def test_find_worklist_errors(server: ObeliskProcess, query_peer: QueryPeer) -> None:
    url = f"{server.url}/modalities/peer/find-worklist"
    assert _error(httpx.post(url, content=b"")) == (400, 15)
    assert _error(httpx.post(url, json={"Query": {"PatientName": 3}})) == (400, 5)
    assert _error(httpx.post(url, json={"Query": "x"})) == (400, 5)
    assert _error(httpx.post(url, json={"Query": {}, "Short": "yes"})) == (400, 15)
    assert _error(httpx.post(url, json={"Nope": "x"})) == (500, 27)
    unknown = httpx.post(f"{server.url}/modalities/nothere/find-worklist", json={})
    assert _error(unknown) == (404, 7)


def test_find_worklist_on_a_peer_without_worklists(server: ObeliskProcess) -> None:
    """The server itself has no worklist SCP: Orthanc's 2016 (C-FIND not supported)."""
    body = {"AET": AET, "Host": "127.0.0.1", "Port": int(server.config["DicomPort"])}
    assert httpx.put(f"{server.url}/modalities/self", json=body).status_code == 200
    answer = httpx.post(f"{server.url}/modalities/self/find-worklist", json={}, timeout=30)
    assert _error(answer) == (500, 2016)


# -- /modalities/{id}/find (hierarchical) -----------------------------------------------------


def test_hierarchical_find(server: ObeliskProcess, query_peer: QueryPeer) -> None:
    before = len(query_peer.finds)
    found = httpx.post(f"{server.url}/modalities/peer/find", json={"PatientName": "DOE*"}).json()
    assert [p["PatientID"] for p in found] == ["P100", "P200"]
    assert found[0]["QueryRetrieveLevel"] == "PATIENT"
    assert found[0]["SpecificCharacterSet"] == "ISO_IR 100"
    studies = found[0]["Studies"]
    assert [s["StudyInstanceUID"] for s in studies] == ["1.2.3.100.0", "1.2.3.100.1"]
    assert studies[0]["Series"] == [
        {"Modality": "CT", "QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": "1.2.3.100.0.1",
         "SpecificCharacterSet": "ISO_IR 100", "StudyInstanceUID": "1.2.3.100.0"}
    ]  # fmt: skip
    sent = query_peer.finds[before:]
    # 1 patient query, then per patient 1 study query, then per study 1 series query.
    assert [str(i.QueryRetrieveLevel) for _, i in sent] == [
        "PATIENT", "STUDY", "SERIES", "SERIES", "STUDY", "SERIES", "SERIES",
    ]  # fmt: skip
    patient_query, study_query, series_query = sent[0][1], sent[1][1], sent[2][1]
    assert sent[0][0] == PATIENT_ROOT_FIND and sent[1][0] == STUDY_ROOT_FIND
    assert str(patient_query.PatientName) == "DOE*" and "PatientBirthDate" in patient_query
    assert study_query.PatientID == "P100" and "PatientName" not in study_query
    assert "StudyDescription" in study_query and "InstitutionName" not in study_query
    assert series_query.StudyInstanceUID == "1.2.3.100.0" and "Modality" in series_query


def test_find_level(server: ObeliskProcess, query_peer: QueryPeer) -> None:
    url = f"{server.url}/modalities/peer/find-study"
    studies = httpx.post(url, json={"PatientID": "P200"}).json()
    assert [s["StudyInstanceUID"] for s in studies] == ["1.2.3.200.0", "1.2.3.200.1"]
    assert studies[0]["SpecificCharacterSet"] == "ISO_IR 100"  # as Orthanc shows answers


# -- C-STORE SCP runtime settings ---------------------------------------------------------------


def _store_status(
    server: ObeliskProcess, dataset: pydicom.Dataset, syntax: str, *, pynetdicom_path: bool
) -> int | None:
    """C-STORE of ``dataset`` proposed in ``syntax`` only; ``None`` when the context is refused.
    A user identity item sends the association to pynetdicom instead of the direct path."""
    ae = AE(ae_title="STORER")
    sop_class = str(dataset.SOPClassUID)
    context = build_context(sop_class, [syntax])
    ext = []
    if pynetdicom_path:
        identity = UserIdentityNegotiation()
        identity.user_identity_type = 1
        identity.primary_field = b"storer"
        ext.append(identity)
    assoc = ae.associate(
        "127.0.0.1",
        int(server.config["DicomPort"]),
        [context, build_context(VERIFICATION)],  # so that the association is kept
        ae_title=AET,
        ext_neg=ext,
    )
    assert assoc.is_established
    try:
        if all(c.abstract_syntax != sop_class for c in assoc.accepted_contexts):
            return None
        fresh = pydicom.Dataset()  # no original encoding: sent in the context's syntax
        fresh.update(dataset)
        fresh.file_meta = pydicom.dataset.FileMetaDataset()
        fresh.file_meta.TransferSyntaxUID = syntax
        answer = assoc.send_c_store(fresh)
        return int(answer.Status)
    finally:
        assoc.release()


@pytest.fixture
def restore_scp_settings(server: ObeliskProcess) -> Iterator[None]:
    syntaxes = httpx.get(f"{server.url}/tools/accepted-transfer-syntaxes").json()
    yield
    httpx.put(f"{server.url}/tools/accepted-transfer-syntaxes", json=syntaxes)
    httpx.put(f"{server.url}/tools/unknown-sop-class-accepted", content=b"0")


@pytest.mark.parametrize("pynetdicom_path", [False, True], ids=["direct", "pynetdicom"])
def test_accepted_transfer_syntaxes_change_the_scp(
    server: ObeliskProcess,
    dicom_files: list[Path],
    restore_scp_settings: None,
    pynetdicom_path: bool,
) -> None:
    url = f"{server.url}/tools/accepted-transfer-syntaxes"
    default = httpx.get(url).json()
    assert len(default) == 42 and default[:2] == [IMPLICIT, EXPLICIT]
    jpeg = httpx.put(url, json=["1.2.840.10008.1.2.4.5?", IMPLICIT]).json()
    assert jpeg[0] == IMPLICIT and "1.2.840.10008.1.2.4.50" in jpeg and EXPLICIT not in jpeg
    dataset = pydicom.dcmread(dicom_files[0])
    assert _store_status(server, dataset, EXPLICIT, pynetdicom_path=pynetdicom_path) is None
    assert _store_status(server, dataset, IMPLICIT, pynetdicom_path=pynetdicom_path) == 0
    assert httpx.put(url, content=b"1.2.840.10008.1.2.1*").json() == [
        EXPLICIT, "1.2.840.10008.1.2.1.99",
    ]  # fmt: skip
    assert _store_status(server, dataset, EXPLICIT, pynetdicom_path=pynetdicom_path) == 0
    assert _store_status(server, dataset, IMPLICIT, pynetdicom_path=pynetdicom_path) is None
    assert _error(httpx.put(url, json={"a": 1})) == (400, 15)


@pytest.mark.parametrize("pynetdicom_path", [False, True], ids=["direct", "pynetdicom"])
def test_unknown_sop_class_accepted_changes_the_scp(
    server: ObeliskProcess,
    dicom_files: list[Path],
    restore_scp_settings: None,
    pynetdicom_path: bool,
) -> None:
    url = f"{server.url}/tools/unknown-sop-class-accepted"
    assert httpx.get(url).text == "0"
    dataset = pydicom.dcmread(dicom_files[1])
    dataset.SOPClassUID = UNKNOWN_SOP_CLASS
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    assert _store_status(server, dataset, EXPLICIT, pynetdicom_path=pynetdicom_path) is None
    assert httpx.put(url, content=b"1").status_code == 200
    assert httpx.get(url).text == "1"
    assert _store_status(server, dataset, EXPLICIT, pynetdicom_path=pynetdicom_path) == 0
    found = httpx.post(
        f"{server.url}/tools/find",
        json={"Level": "Instance", "Query": {"SOPInstanceUID": str(dataset.SOPInstanceUID)}},
    ).json()
    assert len(found) == 1
    assert _error(httpx.put(url, content=b"yes")) == (400, 15)
