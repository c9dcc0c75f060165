"""Bulk tools: ``/tools/bulk-delete``, ``bulk-content``, ``reconstruct``, ``invalidate-tags``.

The expected answers (empty ``text/plain`` bodies, sorted sets with ``Level``, the error
messages) are those of a real Orthanc 1.10.1, asked with the same requests.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from obelisk.core.levels import Level
from obelisk.services.context import Services
from tests.dicom_factory import make_dicom
from tests.unit.http.test_reconstruct import spoil


def _upload(client: TestClient, patients: int = 2, series: int = 2) -> list[dict[str, str]]:
    """``patients`` patients of one study each, ``series`` series of one instance each."""
    stored = []
    for p in range(1, patients + 1):
        for s in range(1, series + 1):
            answer = client.post(
                "/instances",
                content=make_dicom(
                    patient_id=f"P{p}",
                    study_uid=f"1.2.{p}",
                    series_uid=f"1.2.{p}.{s}",
                    sop_uid=f"1.2.{p}.{s}.1",
                ),
            )
            assert answer.status_code == 200
            stored.append(answer.json())
    return stored


def _unique(stored: list[dict[str, str]], key: str) -> list[str]:
    return list(dict.fromkeys(s[key] for s in stored))


def _assert_orthanc_error(answer: Any, status: int, orthanc_status: int, details: str) -> None:
    assert answer.status_code == status
    body = answer.json()
    assert body["OrthancStatus"] == orthanc_status
    assert body.get("Details") == details


def _assert_empty(answer: Any) -> None:
    assert answer.status_code == 200
    assert answer.content == b""
    assert answer.headers["content-type"].startswith("text/plain")


# -- bulk-delete -------------------------------------------------------------------------------
def test_bulk_delete_removes_resources_of_every_level(client: TestClient) -> None:
    stored = _upload(client, patients=3)
    before = client.get("/statistics").json()
    assert (before["CountPatients"], before["CountInstances"]) == (3, 6)
    first, second, third = stored[0], stored[2], stored[5]

    answer = client.post(
        "/tools/bulk-delete",
        json={"Resources": [first["ID"], second["ParentStudy"], third["ParentSeries"]]},
    )

    _assert_empty(answer)
    assert client.get(f"/instances/{first['ID']}").status_code == 404
    assert client.get(f"/studies/{second['ParentStudy']}").status_code == 404
    assert client.get(f"/patients/{second['ParentPatient']}").status_code == 404
    assert client.get(f"/series/{third['ParentSeries']}").status_code == 404
    after = client.get("/statistics").json()
    assert after["CountPatients"] == 2
    assert after["CountStudies"] == 2
    assert after["CountSeries"] == 2
    assert after["CountInstances"] == 2
    assert sorted(client.get("/instances").json()) == sorted([stored[1]["ID"], stored[4]["ID"]])


def test_bulk_delete_skips_unknown_and_already_deleted_ids(client: TestClient) -> None:
    stored = _upload(client)
    patient, its_instance = stored[0]["ParentPatient"], stored[1]["ID"]

    answer = client.post(
        "/tools/bulk-delete", json={"Resources": ["nope", patient, its_instance, patient]}
    )

    _assert_empty(answer)
    assert client.get("/patients").json() == [stored[2]["ParentPatient"]]
    assert client.get("/statistics").json()["CountInstances"] == 2
    _assert_empty(client.post("/tools/bulk-delete", json={"Resources": []}))
    _assert_empty(client.post("/tools/bulk-delete", json={"Resources": ["nope"]}))
    assert client.get("/statistics").json()["CountInstances"] == 2


@pytest.mark.parametrize("route", ["/tools/bulk-delete", "/tools/bulk-content"])
@pytest.mark.parametrize("body", [{}, {"Resources": "abc"}, {"Resources": ["abc", 1]}])
def test_bulk_routes_want_a_list_of_strings(
    client: TestClient, route: str, body: dict[str, Any]
) -> None:
    answer = client.post(route, json=body)
    _assert_orthanc_error(answer, 400, 15, "List of strings expected in field: Resources")


@pytest.mark.parametrize("route", ["/tools/bulk-delete", "/tools/bulk-content"])
def test_bulk_routes_want_a_json_object(client: TestClient, route: str) -> None:
    for content in (b"", b'["abc"]'):
        answer = client.post(route, content=content)
        _assert_orthanc_error(answer, 400, 8, "The body must contain a JSON object")


# -- bulk-content ------------------------------------------------------------------------------
def _content(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    answer = client.post("/tools/bulk-content", json=body)
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()
    return result


def test_bulk_content_is_each_resource_as_get_shows_it_with_its_metadata(
    client: TestClient,
) -> None:
    stored = _upload(client)
    first = stored[0]
    asked = [
        (Level.INSTANCE, first["ID"]),
        (Level.PATIENT, first["ParentPatient"]),
        (Level.SERIES, first["ParentSeries"]),
        (Level.STUDY, first["ParentStudy"]),
        (Level.INSTANCE, first["ID"]),
    ]

    ids = [public_id for _, public_id in asked]

    found = _content(client, Resources=[*ids[:2], "nope", *ids[2:]])

    # In the order asked, duplicates kept, unknown identifiers left out.
    assert [r["ID"] for r in found] == ids
    for (level, public_id), resource in zip(asked, found, strict=True):
        expected = client.get(f"/{level.plural}/{public_id}").json()
        expected["Metadata"] = client.get(f"/{level.plural}/{public_id}/metadata?expand").json()
        assert resource == expected
    assert "ReceptionDate" in found[0]["Metadata"]
    assert "LastUpdate" in found[1]["Metadata"]


def test_bulk_content_without_metadata_equals_get(client: TestClient) -> None:
    study = _upload(client)[0]["ParentStudy"]
    found = _content(client, Resources=[study], Metadata=False)
    assert found == [client.get(f"/studies/{study}").json()]


@pytest.mark.parametrize(
    ("flags", "query"),
    [
        ({"Short": True}, "?short"),
        ({"Full": True}, "?full"),
        ({"Short": True, "Full": True}, "?short"),
        ({"Simplify": True, "Short": True}, ""),
        ({"Simplify": False, "Full": True}, "?full"),
        ({"Full": False}, ""),
    ],
)
def test_bulk_content_tag_formats(client: TestClient, flags: dict[str, bool], query: str) -> None:
    study = _upload(client)[0]["ParentStudy"]
    found = _content(client, Resources=[study], Metadata=False, **flags)
    assert found == [client.get(f"/studies/{study}{query}").json()]


def test_bulk_content_level_goes_up_and_down_to_a_sorted_set(client: TestClient) -> None:
    stored = _upload(client, patients=3, series=3)
    patients = _unique(stored, "ParentPatient")
    series = _unique(stored, "ParentSeries")
    instances = [s["ID"] for s in stored]

    def ids(level: str, resources: list[str]) -> list[str]:
        return [r["ID"] for r in _content(client, Resources=resources, Level=level)]

    # Up: two instances of one patient give that patient once.
    assert ids("Patient", [instances[1], instances[0], "nope"]) == [patients[0]]
    assert ids("Patient", list(reversed(instances))) == sorted(patients)
    # Down: from patients to every instance, sorted by identifier (not in tree order).
    assert ids("Instance", [patients[2], patients[0]]) == sorted(instances[6:] + instances[:3])
    assert ids("Series", _unique(stored, "ParentStudy")) == sorted(series)
    # Mixed levels, overlapping.
    mixed = ids("Series", [instances[4], patients[0], series[1], series[7]])
    assert mixed == sorted({series[4], series[0], series[1], series[2], series[7]})
    # Same level: a set as well.
    assert ids("Instance", list(reversed(instances)) + instances) == sorted(instances)
    assert ids("Study", ["nope"]) == []


def test_bulk_content_level_answers_full_resources(client: TestClient) -> None:
    stored = _upload(client, patients=1, series=1)
    found = _content(client, Resources=[stored[0]["ID"]], Level="study", Metadata=False)
    assert found == [client.get(f"/studies/{stored[0]['ParentStudy']}").json()]
    for spelling in ("Studies", "STUDY", "studies"):
        assert _content(client, Resources=[stored[0]["ID"]], Level=spelling, Metadata=False) == (
            found
        )


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"Metadata": "yes"}, "Boolean value expected in field: Metadata"),
        ({"Metadata": None}, "Boolean value expected in field: Metadata"),
        ({"Full": "x"}, "Boolean value expected in field: Full"),
        ({"Short": 1}, "Boolean value expected in field: Short"),
        ({"Simplify": "x"}, "Boolean value expected in field: Simplify"),
        ({"Level": 3}, "String value expected in field: Level"),
    ],
)
def test_bulk_content_field_types(client: TestClient, body: dict[str, Any], details: str) -> None:
    answer = client.post("/tools/bulk-content", json={"Resources": [], **body})
    _assert_orthanc_error(answer, 400, 15, details)


def test_bulk_content_unknown_level(client: TestClient) -> None:
    answer = client.post("/tools/bulk-content", json={"Resources": [], "Level": "Foo"})
    assert answer.status_code == 400
    assert answer.json()["OrthancStatus"] == 3


# -- reconstruct and invalidate-tags -----------------------------------------------------------
_WRONG = {"PatientName": "WRONG", "SeriesDescription": "WRONG", "InstanceNumber": "99"}


def _spoil(services: Services, public_id: str, level: Level) -> None:
    spoil(services, public_id, level, _WRONG)


def test_reconstruct_all_rewrites_every_level(client: TestClient, services: Services) -> None:
    stored = _upload(client)
    paths = [
        f"/{level.plural}/{s[key]}"
        for s in stored
        for level, key in (
            (Level.PATIENT, "ParentPatient"),
            (Level.STUDY, "ParentStudy"),
            (Level.SERIES, "ParentSeries"),
            (Level.INSTANCE, "ID"),
        )
    ]
    original = {path: client.get(path).json() for path in paths}
    for s in stored:
        _spoil(services, s["ParentPatient"], Level.PATIENT)
        _spoil(services, s["ParentStudy"], Level.STUDY)
        _spoil(services, s["ParentSeries"], Level.SERIES)
        _spoil(services, s["ID"], Level.INSTANCE)
    assert all(client.get(path).json() != original[path] for path in paths)
    last_change = client.get("/changes").json()["Last"]

    _assert_empty(client.post("/tools/reconstruct", content=b"ignored, as by Orthanc"))

    for path in paths:
        again = client.get(path).json()
        assert again["MainDicomTags"] == original[path]["MainDicomTags"], path
        assert again.get("PatientMainDicomTags") == original[path].get("PatientMainDicomTags")
    found = client.post("/tools/find", json={"Level": "Patient", "Query": {"PatientID": "P1"}})
    assert found.json() == [stored[0]["ParentPatient"]]
    assert client.get("/changes").json()["Last"] == last_change


def test_reconstruct_all_on_an_empty_server(client: TestClient) -> None:
    _assert_empty(client.post("/tools/reconstruct"))


def test_invalidate_tags_has_nothing_to_drop(client: TestClient) -> None:
    stored = _upload(client, patients=1, series=1)
    instance = stored[0]["ID"]
    tags = client.get(f"/instances/{instance}/tags").json()
    statistics = client.get("/statistics").json()

    _assert_empty(client.post("/tools/invalidate-tags"))

    # No DICOM-as-JSON attachment exists to drop: the tags come from the file itself.
    assert client.get(f"/instances/{instance}/attachments").json() == ["dicom"]
    assert client.get(f"/instances/{instance}/tags").json() == tags
    assert client.get("/statistics").json() == statistics


def test_tools_index_lists_the_bulk_tools(client: TestClient) -> None:
    names = client.get("/tools").json()
    for name in ("bulk-content", "bulk-delete", "invalidate-tags", "reconstruct"):
        assert name in names
    assert client.get("/tools/bulk-delete").status_code == 405
