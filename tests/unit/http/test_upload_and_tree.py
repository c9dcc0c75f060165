"""The resource tree through the REST API, in process."""

from __future__ import annotations

import io
import zipfile

from starlette.testclient import TestClient

from obelisk.core.identifiers import ResourceIds
from tests.dicom_factory import make_dicom, make_series

IDS = ResourceIds.compute("P001", "1.2.3", "1.2.3.4", "1.2.3.4.1")


def _upload(client: TestClient, data: bytes) -> dict:
    response = client.post("/instances", content=data)
    assert response.status_code == 200, response.text
    return response.json()


def test_upload_answers_orthanc_ids_and_status(client: TestClient) -> None:
    data = make_series(1)[0]
    answer = _upload(client, data)
    assert answer == {
        "ID": IDS.instance,
        "ParentPatient": IDS.patient,
        "ParentStudy": IDS.study,
        "ParentSeries": IDS.series,
        "Path": f"/instances/{IDS.instance}",
        "Status": "Success",
    }
    assert _upload(client, data)["Status"] == "AlreadyStored"
    assert client.get(f"/instances/{IDS.instance}/file").content == data


def test_non_dicom_upload_is_a_400_and_stores_nothing(client: TestClient) -> None:
    _upload(client, make_series(1)[0])
    response = client.post("/instances", content=b"this is not DICOM" * 20)
    assert response.status_code == 400
    body = response.json()
    assert body["HttpStatus"] == 400 and body["OrthancStatus"] == 15
    assert body["Method"] == "POST" and body["Uri"] == "/instances"
    assert client.get("/instances").json() == [IDS.instance]


def test_zip_upload_answers_a_list(client: TestClient) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n, data in enumerate(make_series(3)):
            archive.writestr(f"dir/{n}.dcm", data)
        archive.writestr("README.txt", "not dicom")
    answers = client.post("/instances", content=buffer.getvalue()).json()
    assert [a["Status"] for a in answers] == ["Success"] * 3
    assert len(client.get("/instances").json()) == 3


def test_resource_json_shapes(client: TestClient) -> None:
    for data in make_series(2):
        _upload(client, data)
    patient = client.get(f"/patients/{IDS.patient}").json()
    assert patient["Type"] == "Patient" and patient["Studies"] == [IDS.study]
    assert patient["MainDicomTags"]["PatientName"] == "DOE^JOHN"
    assert set(patient) == {"ID", "IsStable", "LastUpdate", "MainDicomTags", "Studies", "Type"}
    study = client.get(f"/studies/{IDS.study}").json()
    assert study["ParentPatient"] == IDS.patient
    assert study["PatientMainDicomTags"]["PatientID"] == "P001"
    assert study["MainDicomTags"]["AccessionNumber"] == "ACC1"
    series = client.get(f"/series/{IDS.series}").json()
    assert series["Status"] == "Unknown" and series["ExpectedNumberOfInstances"] is None
    assert len(series["Instances"]) == 2 and series["MainDicomTags"]["Modality"] == "CT"
    instance = client.get(f"/instances/{IDS.instance}").json()
    assert set(instance) == {
        "FileSize",
        "FileUuid",
        "ID",
        "IndexInSeries",
        "MainDicomTags",
        "ParentSeries",
        "Type",
    }
    assert instance["IndexInSeries"] == 1
    short = client.get(f"/instances/{IDS.instance}?short").json()
    assert short["MainDicomTags"]["0020,0013"] == "1"
    full = client.get(f"/instances/{IDS.instance}?full").json()
    assert full["MainDicomTags"]["0020,0013"] == {
        "Name": "InstanceNumber",
        "Type": "String",
        "Value": "1",
    }


def test_lists_expand_and_pagination(client: TestClient) -> None:
    for data in make_series(5):
        _upload(client, data)
    all_ids = client.get("/instances").json()
    assert len(all_ids) == 5
    assert client.get("/instances?since=1&limit=2").json() == all_ids[1:3]
    expanded = client.get("/instances?expand").json()
    assert [e["ID"] for e in expanded] == all_ids
    response = client.get("/instances?since=0")
    assert response.status_code == 400 and "limit" in response.json()["Details"]


def test_parent_and_child_routes(client: TestClient) -> None:
    for data in make_series(3):
        _upload(client, data)
    assert [s["ID"] for s in client.get(f"/patients/{IDS.patient}/studies").json()] == [IDS.study]
    assert [s["ID"] for s in client.get(f"/patients/{IDS.patient}/series").json()] == [IDS.series]
    assert len(client.get(f"/studies/{IDS.study}/instances").json()) == 3
    assert client.get(f"/instances/{IDS.instance}/patient").json()["ID"] == IDS.patient
    assert client.get(f"/instances/{IDS.instance}/study").json()["ID"] == IDS.study
    assert client.get(f"/series/{IDS.series}/study").json()["ID"] == IDS.study
    assert client.get(f"/instances/{IDS.instance}/series").json()["ID"] == IDS.series


def test_unknown_resources_are_404_with_orthanc_body(client: TestClient) -> None:
    response = client.get("/studies/0000")
    assert response.status_code == 404
    assert response.json()["OrthancStatus"] == 17
    # an instance id asked as a study is unknown too
    _upload(client, make_series(1)[0])
    assert client.get(f"/studies/{IDS.instance}").status_code == 404


def test_double_slashes_are_accepted(client: TestClient) -> None:
    assert client.get("http://testserver//system").json()["Version"] == "1.10.1"
    assert client.get("http://testserver/patients//").status_code == 200


def test_delete_cascades_and_reports_remaining_ancestor(client: TestClient) -> None:
    for data in make_series(2):
        _upload(client, data)
    other = ResourceIds.compute("P001", "1.2.3", "1.2.3.4", "1.2.3.4.2").instance
    answer = client.delete(f"/instances/{IDS.instance}").json()
    assert answer["RemainingAncestor"] == {
        "ID": IDS.series,
        "Path": f"/series/{IDS.series}",
        "Type": "Series",
    }
    answer = client.delete(f"/instances/{other}").json()
    assert answer["RemainingAncestor"] is None
    assert client.get("/patients").json() == []
    assert client.get("/statistics").json()["CountInstances"] == 0
    # As Orthanc: deleting forgets the resources' changes instead of logging "Deleted".
    changes = client.get("/changes").json()
    assert changes["Changes"] == []
    assert changes["Last"] == 5  # the last sequence number ever given survives


def test_delete_study_keeps_other_studies_of_the_patient(client: TestClient) -> None:
    _upload(client, make_dicom())
    _upload(client, make_dicom(study_uid="9.9", series_uid="9.9.1", sop_uid="9.9.1.1"))
    answer = client.delete(f"/studies/{IDS.study}").json()
    assert answer["RemainingAncestor"]["Type"] == "Patient"
    assert len(client.get("/studies").json()) == 1


def test_statistics(client: TestClient) -> None:
    files = make_series(3)
    for data in files:
        _upload(client, data)
    total = sum(len(f) for f in files)
    stats = client.get("/statistics").json()
    assert stats["CountInstances"] == 3 and stats["CountPatients"] == 1
    assert stats["TotalDiskSize"] == str(total) and stats["TotalDiskSizeMB"] == 0
    study = client.get(f"/studies/{IDS.study}/statistics").json()
    assert study["CountInstances"] == 3 and study["CountSeries"] == 1
    assert study["DicomDiskSize"] == str(total)
    instance = client.get(f"/instances/{IDS.instance}/statistics").json()
    assert "CountInstances" not in instance and instance["DiskSize"] == str(len(files[0]))


def test_protected_flag_round_trip(client: TestClient) -> None:
    _upload(client, make_dicom())
    assert client.get(f"/patients/{IDS.patient}/protected").text == "0"
    assert client.put(f"/patients/{IDS.patient}/protected", content="1").status_code == 200
    assert client.get(f"/patients/{IDS.patient}/protected").text == "1"
    assert client.put(f"/patients/{IDS.patient}/protected", content="yes").status_code == 400
