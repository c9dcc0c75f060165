"""The raw-bytes header walker must read every file exactly as the pydicom path does."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom.data
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from obelisk.core import parsing
from obelisk.core.header_scan import scan_header
from obelisk.core.levels import Level
from obelisk.errors import BadFileFormat
from tests.dicom_factory import make_dicom
from tests.support import synthetic

_PYDICOM_TEST_FILES = sorted(
    path
    for path in (Path(pydicom.data.__file__).parent / "test_files").rglob("*")
    if path.is_file() and path.read_bytes()[128:132] == b"DICM"
)


def _both(data: bytes) -> tuple[object, object]:
    """(result of parse_instance, result of the pydicom-only path); errors as their type."""
    outcomes: list[object] = []
    for parse in (parsing.parse_instance, parsing._parse_with_pydicom):
        try:
            with warnings.catch_warnings():  # pydicom warns about odd files it still reads
                warnings.simplefilter("ignore")
                outcomes.append(parse(data))
        except BadFileFormat as exc:
            outcomes.append(type(exc))
    return outcomes[0], outcomes[1]


def test_pydicom_test_files_are_available() -> None:
    assert len(_PYDICOM_TEST_FILES) > 40


@pytest.mark.parametrize("path", _PYDICOM_TEST_FILES, ids=lambda p: p.name)
def test_walker_and_pydicom_agree_on_pydicom_test_files(path: Path) -> None:
    fast, reference = _both(path.read_bytes())
    assert fast == reference


def test_walker_reads_synthetic_sets_without_falling_back() -> None:
    files = [i.data for i in synthetic.make_dataset(2, 2, 64, seed="scan")]
    files += [i.data for i in synthetic.make_volume(3, 64, seed="scan-volume")]
    files += [make_dicom(patient_name="MÜLLER^Zoë", charset="ISO_IR 192")]
    files += [make_dicom(patient_name="MÜLLER^Zoë", charset="ISO_IR 100")]
    for data in files:
        scan = scan_header(data, parsing._WANTED_SET)
        assert scan is not None
        assert parsing._scanned_values(scan) is not None
        fast, reference = _both(data)
        assert fast == reference


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("undefined", [True, False])
def test_walker_skips_nested_sequences(syntax: str, undefined: bool) -> None:
    dataset = pydicom.dcmread(io.BytesIO(make_dicom()))
    inner = Dataset()
    inner.CodeValue = "X"
    items = []
    for i in range(3):
        item = Dataset()
        item.ReferencedSOPInstanceUID = f"1.2.3.{i}"
        item.PatientName = "NOT^THIS^ONE"  # a wanted tag inside an item must not be taken
        item.ConceptNameCodeSequence = Sequence([inner])
        item.ConceptNameCodeSequence.is_undefined_length = undefined
        items.append(item)
    dataset.ReferencedImageSequence = Sequence(items)
    dataset.ReferencedImageSequence.is_undefined_length = undefined
    for item in items:
        item.is_undefined_length_sequence_item = undefined
    dataset.ImageIndex = 7
    dataset.NumberOfFrames = "1"
    dataset.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    dataset.save_as(buffer, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True)
    data = buffer.getvalue()
    scan = scan_header(data, parsing._WANTED_SET)
    assert scan is not None
    fast, reference = _both(data)
    assert fast == reference
    assert isinstance(fast, parsing.ParsedInstance)
    assert fast.main_tags[Level.PATIENT]["PatientName"] == "DOE^JOHN"
    assert fast.main_tags[Level.INSTANCE]["ImageIndex"] == "7"


@pytest.mark.parametrize("cut", [140, 200, 400, 700])
def test_truncated_files_fall_back_to_pydicom(cut: int) -> None:
    data = make_dicom()[:cut]
    fast, reference = _both(data)
    assert fast == reference


def test_big_endian_and_deflated_are_left_to_pydicom() -> None:
    for name in ("MR_small_bigendian.dcm", "image_dfl.dcm"):
        path = next(p for p in _PYDICOM_TEST_FILES if p.name == name)
        assert scan_header(path.read_bytes(), parsing._WANTED_SET) is None
