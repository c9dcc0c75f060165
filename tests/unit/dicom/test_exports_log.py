"""``/exports`` filled by ``/modalities/{id}/store`` (``LogExportedResources``), and the guards
and templates of the deprecated ``find-*`` routes, in process with a recording fake client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from obelisk.core.levels import Level
from obelisk.http.app import create_app
from obelisk.services.dicom_queries import find_fields, level_fields, specific_enough
from tests.conftest import make_services
from tests.dicom_factory import make_dicom
from tests.unit.dicom.test_modality_routes import FakeClient


def _api(fake: FakeClient, **settings: object) -> Iterator[TestClient]:
    services = make_services(DicomModalities={"pacs": ["PACS", "127.0.0.1", 11112]}, **settings)
    assert services.network is not None
    services.network.client = fake
    services.start()
    with TestClient(create_app(services), client=("127.0.0.1", 50000)) as client:
        yield client
    services.close()


@pytest.fixture
def logging_api() -> Iterator[TestClient]:
    yield from _api(FakeClient(), LogExportedResources=True)


@pytest.fixture
def quiet_api() -> Iterator[TestClient]:
    yield from _api(FakeClient())


def test_store_logs_the_requested_resources(logging_api: TestClient) -> None:
    api = logging_api
    first = api.post("/instances", content=make_dicom()).json()
    api.post("/instances", content=make_dicom(sop_uid="1.2.3.4.6", instance_number=2))
    body = {"Resources": [first["ParentSeries"], first["ID"]], "Asynchronous": True}
    assert api.post("/modalities/pacs/store", json=body).status_code == 200
    exported = api.get("/exports").json()
    assert exported["Done"] is True and exported["Last"] == 2
    series, instance = exported["Exports"]
    assert series["ResourceType"] == "Series" and series["ID"] == first["ParentSeries"]
    assert series["Path"] == f"/series/{first['ParentSeries']}"
    assert series["RemoteModality"] == "pacs"  # the modality's name, not its AET
    assert (series["PatientID"], series["StudyInstanceUID"]) == ("P001", "1.2.3")
    assert series["SeriesInstanceUID"] == "1.2.3.4" and "SOPInstanceUID" not in series
    assert instance["ResourceType"] == "Instance" and instance["SOPInstanceUID"] == "1.2.3.4.5"
    assert instance["Seq"] == 2 and len(instance["Date"]) == 15
    # Paging: a page ending on the newest entry is done, one before it is not (as Orthanc).
    assert api.get("/exports?limit=1").json()["Done"] is False
    assert api.get("/exports?limit=2").json()["Done"] is True
    assert api.get("/exports?since=1&limit=1").json()["Done"] is True
    # An empty page says "Last": since, as Orthanc does for this log.
    assert api.get("/exports?since=7").json() == {"Done": True, "Exports": [], "Last": 7}
    assert api.delete("/exports").status_code == 200
    assert api.get("/exports").json()["Exports"] == []


def test_store_straight_and_unknown_resources_are_not_logged(logging_api: TestClient) -> None:
    api = logging_api
    assert api.post("/modalities/pacs/store-straight", content=make_dicom()).status_code == 200
    missing = api.post("/modalities/pacs/store", json=["0" * 8 + "-" + "0" * 8])
    assert missing.status_code == 404
    assert api.get("/exports").json() == {"Done": True, "Exports": [], "Last": 0}


def test_no_log_by_default(quiet_api: TestClient) -> None:
    uploaded = quiet_api.post("/instances", content=make_dicom()).json()
    assert quiet_api.post("/modalities/pacs/store", json=[uploaded["ID"]]).status_code == 200
    assert quiet_api.get("/exports").json()["Exports"] == []


def test_find_guard_counts_utf8_bytes() -> None:
    assert specific_enough(Level.PATIENT, {})
    assert not specific_enough(Level.STUDY, find_fields({"PatientID": "ab"}))
    assert specific_enough(Level.STUDY, find_fields({"PatientID": "é1"}))  # 3 bytes
    assert specific_enough(Level.STUDY, find_fields({"AccessionNumber": 123}))
    uid = {"StudyInstanceUID": "1.2"}
    assert not specific_enough(Level.SERIES, find_fields(uid))
    assert specific_enough(Level.SERIES, find_fields({**uid, "PatientID": "abc"}))
    assert not specific_enough(Level.INSTANCE, find_fields({**uid, "PatientID": "abc"}))


def test_instance_template_keeps_module_tags_only() -> None:
    fields = find_fields({"InstanceNumber": 1, "NumberOfFrames": "2", "PatientSex": True})
    assert find_fields({"PatientSex": True}) == {0x00100040: "true"}
    instance = level_fields(Level.INSTANCE, fields, {})
    assert instance[0x00200013] == "1" and 0x00280008 not in instance
    assert set(instance) == {
        0x00080012, 0x00080013, 0x00080018, 0x00200013,  # instance main tags in the module
        0x00080050, 0x00100020, 0x0020000D, 0x0020000E,  # upper-level keys
    }  # fmt: skip
