"""C-FIND answers from the index: same matching as /tools/find, requested keys, computed counts."""

from __future__ import annotations

import pydicom

from obelisk.core.levels import Level
from obelisk.services.context import Services
from obelisk.services.find import FindRequest
from obelisk.services.ingest import Origin
from tests.dicom_factory import make_dicom


def _load(services: Services) -> None:
    for patient, name, study, count in (
        ("P1", "DOE^JOHN", "1.2.3.1", 2),
        ("P2", "ROE^ANN", "1.2.3.2", 1),
    ):
        for i in range(count):
            data = make_dicom(
                patient_id=patient,
                patient_name=name,
                study_uid=study,
                series_uid=f"{study}.1",
                sop_uid=f"{study}.1.{i}",
            )
            services.ingest.store(data, Origin(kind="DicomProtocol"))


def _identifier(level: str, **keys: str) -> pydicom.Dataset:
    identifier = pydicom.Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    return identifier


def test_study_find_returns_requested_keys(services: Services) -> None:
    _load(services)
    assert services.network is not None
    requests = services.network.requests
    answers = requests.find(
        Level.STUDY,
        _identifier(
            "STUDY",
            PatientName="doe*",
            StudyInstanceUID="",
            NumberOfStudyRelatedInstances="",
            ModalitiesInStudy="",
        ),
        "OBELISK",
    )
    assert len(answers) == 1
    answer = answers[0]
    assert answer.StudyInstanceUID == "1.2.3.1"
    assert str(answer.PatientName) == "DOE^JOHN"
    assert answer.NumberOfStudyRelatedInstances == 2
    assert answer.QueryRetrieveLevel == "STUDY" and answer.RetrieveAETitle == "OBELISK"
    assert "PatientID" not in answer  # only the keys that were asked for


def test_series_answers_carry_parent_keys(services: Services) -> None:
    _load(services)
    assert services.network is not None
    answers = services.network.requests.find(
        Level.SERIES,
        _identifier("SERIES", StudyInstanceUID="1.2.3.2", SeriesInstanceUID="", PatientID=""),
        "OBELISK",
    )
    assert [(a.SeriesInstanceUID, a.PatientID) for a in answers] == [("1.2.3.2.1", "P2")]


def test_retrieve_designates_instances_by_unique_keys(services: Services) -> None:
    _load(services)
    assert services.network is not None
    requests = services.network.requests
    found = requests.instances_to_retrieve(
        Level.STUDY, _identifier("STUDY", StudyInstanceUID="1.2.3.1")
    )
    assert len(found) == 2
    assert all(sop for _, sop, _ in found)
    assert requests.instances_to_retrieve(Level.STUDY, _identifier("STUDY")) == []


def test_only_person_names_ignore_case(services: Services) -> None:
    """Orthanc 1.10.1's C-FIND (checked against it): ``CaseSensitivePN`` (false by default)
    relaxes person names only; every other string tag matches case-sensitively — unlike
    ``/tools/find``, whose ``CaseSensitive: false`` relaxes them all."""
    _load(services)
    assert services.network is not None
    requests = services.network.requests

    def found(**keys: str) -> int:
        identifier = _identifier("STUDY", StudyInstanceUID="", **keys)
        return len(requests.find(Level.STUDY, identifier, "OBELISK"))

    assert found(PatientName="doe*") == 1
    assert found(StudyDescription="Sample*") == 2
    assert found(StudyDescription="sample*") == 0
    assert found(AccessionNumber="acc1") == 0
    assert found(AccessionNumber="ACC1") == 2
    relaxed = FindRequest(Level.STUDY, {"StudyDescription": "sample*"})  # as /tools/find
    assert len(services.find.find(relaxed)) == 2
