"""The C-STORE SCP's accepted transfer syntaxes and the deprecated find-* C-FIND templates."""

from __future__ import annotations

from obelisk.core.levels import Level
from obelisk.dicom.contexts import StorageAbstractSyntaxes
from obelisk.services.dicom_queries import find_fields, level_fields
from obelisk.services.storage_acceptance import (
    KNOWN_SYNTAXES,
    StorageAcceptance,
    configured_syntaxes,
    matching_syntaxes,
)

CT = "1.2.840.10008.5.1.4.1.1.2"


def test_defaults_are_every_known_syntax() -> None:
    assert configured_syntaxes({}) == list(KNOWN_SYNTAXES)
    assert len(KNOWN_SYNTAXES) == 42


def test_group_options_set_to_false_remove_their_group() -> None:
    accepted = configured_syntaxes({"JpegTransferSyntaxAccepted": False})
    assert "1.2.840.10008.1.2.4.50" not in accepted and "1.2.840.10008.1.2.4.70" not in accepted
    assert "1.2.840.10008.1.2.4.80" in accepted  # JPEG-LS is JpegLossless's group


def test_explicit_list_takes_patterns() -> None:
    values = {"AcceptedTransferSyntaxes": ["1.2.840.10008.1.2", "1.2.840.10008.1.2.4.9?"]}
    assert configured_syntaxes(values) == [
        "1.2.840.10008.1.2",
        *(f"1.2.840.10008.1.2.4.{n}" for n in range(90, 96)),
    ]
    assert matching_syntaxes(["1.2.3.4"]) == []


def test_runtime_changes() -> None:
    acceptance = StorageAcceptance(["1.2.840.10008.1.2"], False)
    assert acceptance.accepts_syntax("1.2.840.10008.1.2")
    assert acceptance.set_syntaxes(["1.2.840.10008.1.2.1*"]) == [
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.1.99",
    ]
    assert not acceptance.accepts_syntax("1.2.840.10008.1.2")
    acceptance.unknown_sop_classes = True
    assert acceptance.unknown_sop_classes


def test_storage_abstract_syntaxes() -> None:
    unknown = "1.2.826.0.1.3680043.8.498.77"
    worklist = "1.2.840.10008.5.1.4.31"
    assert CT in StorageAbstractSyntaxes(False) and unknown not in StorageAbstractSyntaxes(False)
    assert unknown in StorageAbstractSyntaxes(True)
    assert worklist not in StorageAbstractSyntaxes(True)  # known to pynetdicom as another service


def test_find_templates() -> None:
    fields = find_fields({"PatientName": "DOE*", "StudyDescription": "CT", "Modality": "MR"})
    patient = level_fields(Level.PATIENT, fields, {})
    assert patient == {
        0x00100010: "DOE*", 0x00100020: "", 0x00100030: "", 0x00100040: "", 0x00101000: ""
    }  # fmt: skip
    study = level_fields(Level.STUDY, fields, {0x00100020: "P1"})
    assert study[0x00081030] == "CT" and study[0x00100020] == "P1"
    assert 0x00100010 not in study and 0x00080080 not in study and 0x00080060 not in study
    series = level_fields(Level.SERIES, fields, {0x0020000D: "1.2.3"})
    assert series[0x00080060] == "MR" and series[0x0020000D] == "1.2.3"
    assert 0x00080070 not in series  # Manufacturer: a main tag outside the series template
