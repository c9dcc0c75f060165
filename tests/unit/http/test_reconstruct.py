"""``POST /{level}/{id}/reconstruct``: main tags read again from the stored files."""

from __future__ import annotations

from starlette.testclient import TestClient

from obelisk.core.levels import Level
from obelisk.services.context import Services
from tests.dicom_factory import make_dicom


def _upload(client: TestClient) -> dict[str, str]:
    answers = [
        client.post(
            "/instances",
            content=make_dicom(sop_uid=f"1.2.3.4.{n}", instance_number=n, patient_name="DOE^JANE"),
        ).json()
        for n in (1, 2)
    ]
    return answers[0]


def spoil(
    services: Services, public_id: str, level: Level, tags: dict[str, str] | None = None
) -> None:
    """Main tags as a buggy earlier version might have indexed them."""
    resource = services.index.lookup(public_id, level)
    assert resource is not None
    with services.index.write() as writer:
        writer.replace_main_tags(
            resource.internal_id,
            level,
            tags or {"PatientName": "WRONG", "StudyDate": "19000101", "SeriesNumber": "99"},
            {"PatientName": "WRONG"} if level is Level.STUDY else None,
        )


def _study_found(client: TestClient, **query: str) -> list[str]:
    answer = client.post("/tools/find", json={"Level": "Study", "Query": query})
    assert answer.status_code == 200
    return list(answer.json())


def test_reconstruct_rewrites_the_resource_and_its_children(
    client: TestClient, services: Services
) -> None:
    stored = _upload(client)
    study, series = stored["ParentStudy"], stored["ParentSeries"]
    original = client.get(f"/studies/{study}").json()
    original_series = client.get(f"/series/{series}").json()["MainDicomTags"]
    spoil(services, study, Level.STUDY)
    spoil(services, series, Level.SERIES)
    spoil(services, stored["ID"], Level.INSTANCE)
    assert client.get(f"/studies/{study}").json()["PatientMainDicomTags"]["PatientName"] == "WRONG"
    assert _study_found(client, PatientName="DOE^JANE") == []

    answer = client.post(f"/studies/{study}/reconstruct")

    assert answer.status_code == 200 and answer.content == b""
    again = client.get(f"/studies/{study}").json()
    assert again["MainDicomTags"] == original["MainDicomTags"]
    assert again["PatientMainDicomTags"] == original["PatientMainDicomTags"]
    assert client.get(f"/series/{series}").json()["MainDicomTags"] == original_series
    instance = client.get(f"/instances/{stored['ID']}").json()["MainDicomTags"]
    assert instance["SOPInstanceUID"] == "1.2.3.4.1"
    assert _study_found(client, PatientName="DOE^JANE") == [study], "searchable again"


def test_reconstruct_leaves_the_ancestors_alone(client: TestClient, services: Services) -> None:
    stored = _upload(client)
    spoil(services, stored["ParentStudy"], Level.STUDY)
    assert client.post(f"/series/{stored['ParentSeries']}/reconstruct").status_code == 200
    study = client.get(f"/studies/{stored['ParentStudy']}").json()
    assert study["PatientMainDicomTags"]["PatientName"] == "WRONG"


def test_reconstruct_of_an_unknown_resource_is_404(client: TestClient) -> None:
    answer = client.post("/patients/00000000-00000000-00000000-00000000-00000000/reconstruct")
    assert answer.status_code == 404
