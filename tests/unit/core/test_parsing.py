import pytest

from obelisk.core.identifiers import orthanc_hash
from obelisk.core.levels import Level
from obelisk.core.parsing import parse_instance
from obelisk.errors import BadFileFormat
from tests.dicom_factory import make_dicom


def test_parse_reads_ids_main_tags_and_metadata() -> None:
    data = make_dicom()
    parsed = parse_instance(data)
    assert parsed.ids.patient == orthanc_hash("P001")
    assert parsed.main_tags[Level.PATIENT]["PatientName"] == "DOE^JOHN"
    assert parsed.main_tags[Level.STUDY]["StudyDate"] == "20220323"
    assert parsed.main_tags[Level.SERIES]["Modality"] == "CT"
    assert parsed.main_tags[Level.INSTANCE]["InstanceNumber"] == "1"
    assert parsed.main_tags[Level.SERIES]["ImageOrientationPatient"] == "1\\0\\0\\0\\1\\0"
    assert parsed.transfer_syntax == "1.2.840.10008.1.2.1"
    assert parsed.index_in_series == 1
    # Orthanc's PixelDataOffset points at the PixelData element itself (tag, VR, length, value).
    assert parsed.pixel_data_offset is not None
    assert data[parsed.pixel_data_offset : parsed.pixel_data_offset + 4] == b"\xe0\x7f\x10\x00"


def test_parse_decodes_utf8_and_latin1_names() -> None:
    utf8 = parse_instance(make_dicom(patient_name="MÜLLER^Zoë", charset="ISO_IR 192"))
    assert utf8.main_tags[Level.PATIENT]["PatientName"] == "MÜLLER^Zoë"
    latin1 = parse_instance(make_dicom(patient_name="MÜLLER^Zoë", charset="ISO_IR 100"))
    assert latin1.main_tags[Level.PATIENT]["PatientName"] == "MÜLLER^Zoë"


def test_parse_rejects_non_dicom() -> None:
    with pytest.raises(BadFileFormat):
        parse_instance(b"hello" * 100)


def test_parse_rejects_truncated_files() -> None:
    data = make_dicom()
    with pytest.raises(BadFileFormat):
        parse_instance(data[:200])


def test_parse_requires_the_uids() -> None:
    with pytest.raises(BadFileFormat, match="SOPInstanceUID"):
        parse_instance(make_dicom(extra={"SOPInstanceUID": None}))
