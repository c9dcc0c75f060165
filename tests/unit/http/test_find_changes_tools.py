"""``/tools/find``, ``/tools/lookup``, ``/changes`` and the small tools, in process."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from obelisk.core.identifiers import ResourceIds
from tests.dicom_factory import make_dicom

PATIENTS = [
    ("P1", "DOE^JOHN", "20200101", "CT", "Chest"),
    ("P2", "DOE^JANE", "20210615", "MR", "Brain"),
    ("P3", "MÜLLER^HANS", "20221231", "CT", "Abdomen"),
]


@pytest.fixture
def loaded(client: TestClient) -> TestClient:
    for n, (pid, name, date, modality, description) in enumerate(PATIENTS):
        data = make_dicom(
            patient_id=pid,
            patient_name=name,
            study_uid=f"1.{n}",
            series_uid=f"1.{n}.1",
            sop_uid=f"1.{n}.1.1",
            study_date=date,
            modality=modality,
            charset="ISO_IR 192",
            extra={"StudyDescription": description, "BodyPartExamined": description.upper()},
        )
        assert client.post("/instances", content=data).status_code == 200
    return client


def _find(client: TestClient, level: str, **query: str) -> list[str]:
    response = client.post("/tools/find", json={"Level": level, "Query": query})
    assert response.status_code == 200, response.text
    found: list[str] = response.json()
    if level != "Instance":
        assert found == sorted(found), "Orthanc lists patients, studies and series by ID"
    return found


def _study(n: int) -> str:
    return ResourceIds.compute(PATIENTS[n][0], f"1.{n}", "x", "y").study


def test_find_by_patient_name_wildcard_case_insensitive(loaded: TestClient) -> None:
    assert _find(loaded, "Study", PatientName="doe*") == sorted([_study(0), _study(1)])
    assert _find(loaded, "Study", PatientName="*hans") == [_study(2)]
    assert _find(loaded, "Study", PatientName="muller^hans") == [_study(2)]


def test_find_case_sensitive_when_asked(loaded: TestClient) -> None:
    body = {"Level": "Study", "Query": {"PatientName": "doe*"}, "CaseSensitive": True}
    assert loaded.post("/tools/find", json=body).json() == []


def test_find_date_ranges_and_lists(loaded: TestClient) -> None:
    assert _find(loaded, "Study", StudyDate="20200101-20211231") == sorted([_study(0), _study(1)])
    assert _find(loaded, "Study", StudyDate="20220101-") == [_study(2)]
    assert _find(loaded, "Series", Modality="MR\\US") == [
        ResourceIds.compute("P2", "1.1", "1.1.1", "x").series
    ]


def test_find_combines_levels(loaded: TestClient) -> None:
    found = _find(loaded, "Instance", PatientName="DOE*", Modality="CT")
    assert found == [ResourceIds.compute("P1", "1.0", "1.0.1", "1.0.1.1").instance]
    assert _find(loaded, "Patient", PatientID="P3") == [
        ResourceIds.compute("P3", "", "", "").patient
    ]


def test_find_on_tags_that_are_not_indexed_reads_the_files(loaded: TestClient) -> None:
    assert _find(loaded, "Study", BodyPartExamined="BRAIN") == [_study(1)]
    assert _find(loaded, "Study", BodyPartExamined="B*", PatientName="DOE*") == [_study(1)]


def test_find_expand_limit_since_and_requested_tags(loaded: TestClient) -> None:
    body = {
        "Level": "Study",
        "Query": {},
        "Expand": True,
        "Limit": 2,
        "Since": 1,
        "RequestedTags": ["StudyDescription", "BodyPartExamined"],
    }
    answer = loaded.post("/tools/find", json=body).json()
    # Pages are cut in the order of the IDs: study 1, study 2, study 0.
    assert [a["ID"] for a in answer] == [_study(2), _study(0)]
    chest = answer[1]
    assert chest["Type"] == "Study" and chest["PatientMainDicomTags"]["PatientID"] == "P1"
    assert chest["RequestedTags"] == {"StudyDescription": "Chest", "BodyPartExamined": "CHEST"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"Level": "Foo", "Query": {}}, 400),
        ({"Level": "Study"}, 400),
        ({"Query": {}}, 400),
        ({"Level": "Study", "Query": {"NoSuchTag": "x"}}, 400),
        ({"Level": "Study", "Query": {"PatientName": 3}}, 400),
        ({"Level": "Study", "Query": {}, "Limit": "many"}, 400),
    ],
)
def test_find_rejects_bad_requests(client: TestClient, body: dict, status: int) -> None:
    response = client.post("/tools/find", json=body)
    assert response.status_code == status
    assert "OrthancStatus" in response.json()


def test_find_rejects_invalid_json(client: TestClient) -> None:
    response = client.post("/tools/find", content=b"{not json")
    assert response.status_code == 400 and response.json()["OrthancStatus"] == 8  # as Orthanc


def test_lookup(loaded: TestClient) -> None:
    answer = loaded.post("/tools/lookup", content="1.1").json()
    assert answer == [{"ID": _study(1), "Path": f"/studies/{_study(1)}", "Type": "Study"}]
    assert loaded.post("/tools/lookup", content="P3").json()[0]["Type"] == "Patient"
    assert loaded.post("/tools/lookup", content="nothing").json() == []


def test_changes_log(loaded: TestClient) -> None:
    log = loaded.get("/changes").json()
    kinds = [c["ChangeType"] for c in log["Changes"]]
    assert kinds[:4] == ["NewInstance", "NewSeries", "NewStudy", "NewPatient"]
    assert log["Done"] is True and log["Last"] == log["Changes"][-1]["Seq"]
    page = loaded.get("/changes?since=2&limit=3").json()
    assert [c["Seq"] for c in page["Changes"]] == [3, 4, 5] and page["Done"] is False
    last = loaded.get("/changes?last").json()
    assert len(last["Changes"]) == 1 and last["Last"] == log["Last"]
    assert loaded.delete("/changes").status_code == 200
    assert loaded.get("/changes").json()["Changes"] == []


def test_stable_changes_after_stable_age(loaded: TestClient) -> None:
    services = loaded.app.state.services  # type: ignore[attr-defined]
    import time

    time.sleep(1.1)  # StableAge is 1 s in the test settings
    services.stability.tick()
    kinds = [c["ChangeType"] for c in loaded.get("/changes?limit=1000").json()["Changes"]]
    assert {"StableSeries", "StableStudy", "StablePatient"} <= set(kinds)
    assert loaded.get(f"/studies/{_study(0)}").json()["IsStable"] is True


def test_exports_log_is_empty_and_clearable(client: TestClient) -> None:
    assert client.get("/exports").json() == {"Done": True, "Exports": [], "Last": 0}
    assert client.delete("/exports").status_code == 200


def test_system_and_tools(client: TestClient) -> None:
    system = client.get("/system").json()
    assert system["ApiVersion"] == 16 and system["DicomAet"] == "ORTHANC"
    assert len(client.get("/tools/now").text) == 15
    uid = client.get("/tools/generate-uid?level=study").text
    assert uid.replace(".", "").isdigit()
    assert client.get("/tools/generate-uid?level=foo").status_code == 400
    assert "Verification" in client.get("/tools/dicom-conformance").text
    assert client.get("/tools/default-encoding").text == "Latin1"


def test_tools_index_lists_the_tools_of_every_module(client: TestClient) -> None:
    tools = client.get("/tools").json()
    for name in ("find", "lookup", "create-archive", "metrics-prometheus", "log-level", "now"):
        assert name in tools
    assert tools == sorted(tools)


@pytest.mark.parametrize("path", ["/tools/shutdown", "/tools/reset"])
def test_stopping_needs_a_server_process(client: TestClient, path: str) -> None:
    """In process (no server of its own) the app says so instead of pretending."""
    response = client.post(path)
    assert response.status_code == 500
    assert response.json()["OrthancError"] == "Not implemented yet"
