"""Orthanc 1.10.1's deprecated C-FIND routes and its exports log, over real associations.

``/modalities/{id}/find-patient|study|series|instance`` send Orthanc's template of the level
(main tags inside the level's DICOM module, plus the upper-level keys) with the body's values
for those tags, drop every other key, and leave a query that is not specific enough unanswered
(a bare 400). ``LogExportedResources`` records in ``/exports`` each resource a
``/modalities/{id}/store`` asks for. A pynetdicom peer started here records what it receives.

Every test runs against this server and, when installed, against the real Orthanc 1.10.1 with
the same peer: the expectations below are Orthanc's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pynetdicom import AE, AllStoragePresentationContexts, evt

from tests.integration.dicom.conftest import AET, start_server
from tests.integration.server_process import free_port
from tests.support.orthanc import OrthancStartError, orthanc_available, start_orthanc, stop_orthanc
from tests.support.synthetic import make_dataset, write_files

VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
CHARSET = {"SpecificCharacterSet": "ISO_IR 100"}


class RecordingPeer:
    """``PEER``: a C-FIND SCP (no matches) and C-STORE SCP recording what it receives."""

    def __init__(self, port: int) -> None:
        self.finds: list[tuple[str, pydicom.Dataset]] = []
        self.stored: list[str] = []
        ae = AE(ae_title="PEER")
        for uid in (VERIFICATION, PATIENT_ROOT_FIND, STUDY_ROOT_FIND):
            ae.add_supported_context(uid)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax)
        handlers: Any = [(evt.EVT_C_FIND, self._on_find), (evt.EVT_C_STORE, self._on_store)]
        self.server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)

    def stop(self) -> None:
        self.server.shutdown()

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int, pydicom.Dataset | None]]:
        self.finds.append((str(event.request.AffectedSOPClassUID), event.identifier))
        yield from ()

    def _on_store(self, event: evt.Event) -> int:
        self.stored.append(str(event.dataset.SOPInstanceUID))
        return 0x0000


@pytest.fixture(scope="module")
def peer() -> Iterator[tuple[RecordingPeer, int]]:
    port = free_port()
    running = RecordingPeer(port)
    yield running, port
    running.stop()


def _config(peer_port: int) -> dict[str, Any]:
    return {
        "DicomModalities": {
            "peer": ["PEER", "127.0.0.1", peer_port],
            "down": ["DOWN", "127.0.0.1", free_port()],
        },
        "LogExportedResources": True,
    }


@pytest.fixture(scope="module", params=["obelisk", "orthanc"])
def server_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    peer: tuple[RecordingPeer, int],
) -> Iterator[str]:
    """This server, then the real Orthanc 1.10.1 (skipped when it is not installed)."""
    workdir = tmp_path_factory.mktemp(request.param)
    if request.param == "obelisk":
        process = start_server(workdir, _config(peer[1]))
        yield process.url
        process.stop()
        return
    if not orthanc_available():
        pytest.skip("Orthanc 1.10.1 is not installed")
    try:
        orthanc = start_orthanc(workdir, {**_config(peer[1]), "DicomAet": AET})
    except OrthancStartError as exc:
        pytest.skip(f"Orthanc did not start: {exc}")
    yield orthanc.url
    stop_orthanc(orthanc)


def _sent(identifier: pydicom.Dataset) -> dict[str, str]:
    """An identifier as keyword → text. (Orthanc also sends MediaStorageSOPInstanceUID, a file
    meta element, inside its instance-level identifiers; this server does not.)"""
    return {
        element.keyword: "" if element.value is None else str(element.value)
        for element in identifier
        if element.tag.group != 0x0002
    }


def _find(url: str, peer: RecordingPeer, route: str, body: str) -> tuple[httpx.Response, list]:
    before = len(peer.finds)
    answer = httpx.post(f"{url}/modalities/peer/{route}", content=body, timeout=30)
    return answer, peer.finds[before:]


PATIENT_TEMPLATE = {"PatientName": "", "PatientID": "", "PatientBirthDate": "", "PatientSex": "",
                    "OtherPatientIDs": ""}  # fmt: skip
STUDY_TEMPLATE = {"StudyDate": "", "StudyTime": "", "AccessionNumber": "",
                  "ReferringPhysicianName": "", "StudyDescription": "", "PatientID": "",
                  "StudyInstanceUID": "", "StudyID": ""}  # fmt: skip
SERIES_TEMPLATE = {"SeriesDate": "", "SeriesTime": "", "AccessionNumber": "", "Modality": "",
                   "SeriesDescription": "", "OperatorsName": "", "PatientID": "",
                   "BodyPartExamined": "", "ProtocolName": "", "StudyInstanceUID": "",
                   "SeriesInstanceUID": "", "SeriesNumber": "",
                   "PerformedProcedureStepDescription": ""}  # fmt: skip
INSTANCE_TEMPLATE = {"InstanceCreationDate": "", "InstanceCreationTime": "", "SOPInstanceUID": "",
                     "AccessionNumber": "", "PatientID": "", "StudyInstanceUID": "",
                     "SeriesInstanceUID": "", "InstanceNumber": ""}  # fmt: skip

#: (route, body, identifier sent: level, template, values), as Orthanc 1.10.1 sends them.
SENT = [
    ("find-patient", "{}", "PATIENT", PATIENT_TEMPLATE, {}),
    (
        "find-patient",
        '{"PatientName": "D*", "StudyDescription": "x", "Modality": "CT", "0009,1001": "q",'
        ' "EthnicGroup": "X", "NumberOfPatientRelatedStudies": "2", "PatientSex": true}',
        "PATIENT",
        PATIENT_TEMPLATE,
        {"PatientName": "D*", "PatientSex": "true"},
    ),
    (
        "find-study",
        '{"PatientID": "abc", "PatientName": "D*", "Modality": "CT", "StudyDescription": "x",'
        ' "InstitutionName": "H", "ModalitiesInStudy": "CT", "NumberOfStudyRelatedSeries": "3",'
        ' "PhysiciansOfRecord": "X", "RequestingPhysician": "R", "StudyID": "S"}',
        "STUDY",
        STUDY_TEMPLATE,
        {"PatientID": "abc", "StudyDescription": "x", "ModalitiesInStudy": "CT", "StudyID": "S"},
    ),
    (
        "find-study",
        '{"AccessionNumber": "abc"}',
        "STUDY",
        STUDY_TEMPLATE,
        {"AccessionNumber": "abc"},
    ),
    (
        "find-study",
        '{"PatientID": 1.5, "AccessionNumber": 123}',
        "STUDY",
        STUDY_TEMPLATE,
        {"PatientID": "1.5", "AccessionNumber": "123"},
    ),
    (
        "find-study",
        '{"0010,0020": "\u00e91", "StudyDate": "20200101-"}',
        "STUDY",
        STUDY_TEMPLATE,
        {"PatientID": "\u00e91", "StudyDate": "20200101-"},
    ),
    (
        "find-series",
        '{"PatientID": "abc", "StudyInstanceUID": "1.2.3", "PatientName": "X", "StudyDate": "2",'
        ' "Modality": "CT", "Laterality": "L", "Manufacturer": "M", "StationName": "S"}',
        "SERIES",
        SERIES_TEMPLATE,
        {"PatientID": "abc", "StudyInstanceUID": "1.2.3", "Modality": "CT"},
    ),
    (
        "find-series",
        '{"AccessionNumber": "abc", "StudyInstanceUID": "1.2"}',
        "SERIES",
        SERIES_TEMPLATE,
        {"AccessionNumber": "abc", "StudyInstanceUID": "1.2"},
    ),
    (
        "find-instance",
        '{"PatientID": "abc", "StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2",'
        ' "SOPClassUID": "1.2", "AcquisitionNumber": "4", "NumberOfFrames": "2",'
        ' "SOPInstanceUID": "9.8", "InstanceCreationDate": "2020", "Modality": "CT",'
        ' "InstanceNumber": "1", "ImageComments": "x"}',
        "IMAGE",
        INSTANCE_TEMPLATE,
        {
            "PatientID": "abc",
            "StudyInstanceUID": "1.2.3",
            "SeriesInstanceUID": "1.2",
            "SOPInstanceUID": "9.8",
            "InstanceCreationDate": "2020",
            "InstanceNumber": "1",
        },
    ),
]

#: Requests Orthanc declines with a bare 400 and no association.
DECLINED = [
    ("find-patient", ""),
    ("find-patient", "[1]"),
    ("find-study", ""),
    ("find-study", "{}"),
    ("find-study", "not json"),
    ("find-study", '{"PatientName": "DOE*"}'),
    ("find-study", '{"PatientID": "ab"}'),
    ("find-study", '{"PatientID": "a*", "AccessionNumber": "12"}'),
    ("find-study", '{"StudyInstanceUID": "1.2.3"}'),
    ("find-series", '{"PatientID": "abc"}'),
    ("find-series", '{"StudyInstanceUID": "1.2.3"}'),
    ("find-instance", '{"PatientID": "abc", "StudyInstanceUID": "1.2.3"}'),
    (
        "find-instance",
        '{"PatientID": "abc", "StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1."}',
    ),
    ("find", ""),
    ("find", "[1]"),
]


def test_find_sends_the_level_template(server_url: str, peer: tuple[RecordingPeer, int]) -> None:
    recorder = peer[0]
    for route, body, level, template, values in SENT:
        answer, sent = _find(server_url, recorder, route, body)
        assert (route, body, answer.status_code, answer.json()) == (route, body, 200, [])
        model = PATIENT_ROOT_FIND if level == "PATIENT" else STUDY_ROOT_FIND
        assert [m for m, _ in sent] == [model]
        expected = {**template, **values, **CHARSET, "QueryRetrieveLevel": level}
        assert (route, body, _sent(sent[0][1])) == (route, body, expected)


def test_find_declines_unspecific_queries(server_url: str, peer: tuple[RecordingPeer, int]) -> None:
    for route, body in DECLINED:
        answer, sent = _find(server_url, peer[0], route, body)
        assert (route, body, answer.status_code, answer.content, sent) == (
            route, body, 400, b"", [],
        )  # fmt: skip
    # The guard comes before the modality lookup; an unknown tag is Orthanc's 27.
    unknown = httpx.post(f"{server_url}/modalities/nothere/find-study", json={"PatientID": "ab"})
    assert unknown.status_code == 400 and unknown.content == b""
    unknown = httpx.post(f"{server_url}/modalities/nothere/find-patient", json={})
    assert (unknown.status_code, unknown.json()["OrthancStatus"]) == (404, 7)
    bogus = httpx.post(f"{server_url}/modalities/peer/find-study", json={"Bogus": "abc"})
    assert (bogus.status_code, bogus.json()["OrthancStatus"]) == (500, 27)


def test_hierarchical_find_drops_keys_outside_the_module(
    server_url: str, peer: tuple[RecordingPeer, int]
) -> None:
    body = '{"InstitutionName": "X", "PatientName": "D*", "StationName": "S"}'
    answer, sent = _find(server_url, peer[0], "find", body)
    assert answer.json() == []  # no patient matches: no study query
    expected = {**PATIENT_TEMPLATE, **CHARSET, "QueryRetrieveLevel": "PATIENT", "PatientName": "D*"}
    assert [_sent(identifier) for _, identifier in sent] == [expected]


@pytest.fixture(scope="module")
def dicom_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    instances = list(make_dataset(1, 2, 8, seed="exports", studies_per_patient=1))
    return write_files(instances, tmp_path_factory.mktemp("exports"))


def _exports(url: str, query: str = "") -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{url}/exports{query}").json()
    for entry in found["Exports"]:
        assert len(entry.pop("Date")) == 15  # YYYYMMDDTHHMMSS
    return found


def test_store_logs_each_requested_resource(
    server_url: str, peer: tuple[RecordingPeer, int], dicom_files: list[Path]
) -> None:
    uploaded = [
        httpx.post(f"{server_url}/instances", content=f.read_bytes()).json() for f in dicom_files
    ]
    first = uploaded[0]
    tags = httpx.get(f"{server_url}/instances/{first['ID']}/simplified-tags").json()
    assert httpx.delete(f"{server_url}/exports").status_code == 200
    assert _exports(server_url) == {"Done": True, "Exports": [], "Last": 0}

    store = f"{server_url}/modalities/peer/store"
    resources = [first["ParentStudy"], first["ID"], first["ParentSeries"], first["ParentPatient"]]
    content = httpx.post(store, json={"Resources": resources, "Synchronous": True}, timeout=60)
    assert content.json()["InstancesCount"] == 7
    straight = httpx.post(f"{store}-straight", content=dicom_files[0].read_bytes(), timeout=60)
    assert straight.status_code == 200  # not logged
    down = httpx.post(
        f"{server_url}/modalities/down/store",
        json={"Resources": [first["ParentSeries"]], "Timeout": 2},
        timeout=60,
    )
    assert down.status_code == 500  # logged all the same: when the request is accepted

    patient = {"PatientID": tags["PatientID"], "RemoteModality": "peer"}
    study = {**patient, "StudyInstanceUID": tags["StudyInstanceUID"]}
    series = {**study, "SeriesInstanceUID": tags["SeriesInstanceUID"]}
    instance = {**series, "SOPInstanceUID": tags["SOPInstanceUID"]}

    def entry(seq: int, kind: str, public_id: str, keys: dict[str, str]) -> dict[str, Any]:
        path = {"Patient": "patients", "Study": "studies", "Series": "series"}
        plural = path.get(kind, "instances")
        return {"ID": public_id, "Path": f"/{plural}/{public_id}", "ResourceType": kind,
                "Seq": seq, **keys}  # fmt: skip

    expected = [
        entry(1, "Study", first["ParentStudy"], study),
        entry(2, "Instance", first["ID"], instance),
        entry(3, "Series", first["ParentSeries"], series),
        entry(4, "Patient", first["ParentPatient"], patient),
        entry(5, "Series", first["ParentSeries"], {**series, "RemoteModality": "down"}),
    ]
    assert _exports(server_url) == {"Done": True, "Exports": expected, "Last": 5}
    assert _exports(server_url, "?since=3&limit=1") == {
        "Done": False, "Exports": expected[3:4], "Last": 4,
    }  # fmt: skip
    assert _exports(server_url, "?since=9") == {"Done": True, "Exports": [], "Last": 9}
