"""Deterministic synthetic DICOM Part 10 files (explicit VR little endian), built with pydicom 3.

Everything is a pure function of its arguments: the same call gives the same bytes, byte for byte,
on every machine. UIDs come from :func:`uid`, which hashes its arguments into a ``2.25.`` UID.

Building blocks:

* :func:`make_ct_instance` — one CT image (real pixel data: an elliptic phantom with a gradient,
  ``uint16`` stored values with RescaleSlope/Intercept, WindowCenter/Width, increasing
  ImagePositionPatient along the series).
* :func:`make_dataset` — ``n_studies`` studies of ``instances_per_study`` slices (one series each).
* :func:`benchmark_sets` — the benchmark inputs: 1,000 instances of 256x256 over 100 studies, and
  one 300-slice 512x512 study.
* :func:`make_tiny_study` — a one-instance 8x8 study, used to fill an index with many studies.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
#: A fixed implementation UID so that the file meta group never depends on the pydicom version.
IMPLEMENTATION_CLASS_UID = "2.25.163527357391357412349131412717283581441"
IMPLEMENTATION_VERSION_NAME = "OBELISK_SYNTH"
PRIVATE_CREATOR = "OBELISK SYNTHETIC"

#: (family, given) names used by the generated patients; some need a non-ASCII character set.
SURNAMES = (
    "DOE",
    "SMITH",
    "MÜLLER",
    "GARCÍA",
    "JOHNSON",
    "DUPONT",
    "ROSSI",
    "NOVAK",
    "BROWN",
    "LEE",
)
GIVEN_NAMES = ("JOHN", "JANE", "JÜRGEN", "JOSÉ", "MARY", "PIERRE", "GIULIA", "JAN", "ANNA", "MIN")


def uid(*parts: object) -> str:
    """A deterministic ``2.25.`` UID derived from ``parts`` (at most 44 characters).

    (pydicom's ``generate_uid(prefix=None, …)`` ignores its entropy sources and is random, so the
    128-bit integer is taken from a SHA-256 of the parts here, as ``2.25`` UIDs are built.)
    """
    key = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return "2.25." + str(int.from_bytes(hashlib.sha256(key).digest()[:16], "big"))


def is_ascii(text: str) -> bool:
    return all(ord(c) < 128 for c in text)


def phantom(rows: int, cols: int, z: float = 0.5, seed: int = 0) -> np.ndarray:
    """Hounsfield units of an axial slice of an elliptic "torso" at height ``z`` ∈ [0, 1].

    Body (soft tissue with a left-right gradient), two lungs whose size changes with ``z``,
    a vertebra, and a faint deterministic noise. Returns ``int16`` HU, air = -1000.
    """
    y, x = np.mgrid[-1.0 : 1.0 : rows * 1j, -1.0 : 1.0 : cols * 1j]
    hu = np.full((rows, cols), -1000.0)
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1.0
    hu[body] = 40.0 + 30.0 * x[body] + 10.0 * y[body]
    lung_r = 0.18 + 0.12 * np.sin(np.pi * z)
    for cx in (-0.4, 0.4):
        lung = ((x - cx) / (lung_r * 1.2)) ** 2 + ((y + 0.05) / (lung_r * 1.6)) ** 2 <= 1.0
        hu[lung] = -800.0 + 50.0 * y[lung]
    spine = (x**2 + (y - 0.45) ** 2) <= (0.12 + 0.02 * z) ** 2
    hu[spine] = 700.0
    rng = np.random.default_rng(seed)
    hu += rng.integers(-5, 6, size=(rows, cols))
    result: np.ndarray = np.clip(hu, -1024, 3071).astype(np.int16)
    return result


def _stored_values(rows: int, cols: int, z: float, seed: int) -> bytes:
    stored = (phantom(rows, cols, z, seed).astype(np.int32) + 1024).astype("<u2")
    return stored.tobytes()


@dataclass(frozen=True, slots=True)
class SyntheticInstance:
    """One generated file and the identifiers it carries."""

    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    data: bytes


def make_ct_instance(
    patient_id: str,
    patient_name: str,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    instance_number: int,
    rows: int = 256,
    cols: int = 256,
    *,
    study_date: str = "20200101",
    study_time: str = "083000",
    study_description: str = "CT CHEST",
    series_description: str = "AXIAL 1.0",
    series_number: int = 1,
    accession_number: str = "",
    modality: str = "CT",
    sop_class_uid: str = CT_IMAGE_STORAGE,
    patient_birth_date: str = "19700101",
    patient_sex: str = "M",
    specific_character_set: str | None = None,
    slice_thickness: float = 1.0,
    slices_in_series: int = 1,
    images_in_acquisition: int | None = None,
    private_tags: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """One CT image as a DICOM Part 10 file (explicit VR little endian).

    ``specific_character_set`` defaults to nothing for ASCII names and ``ISO_IR 192`` otherwise;
    pass ``"ISO_IR 100"`` for Latin-1. ``private_tags`` adds a private block in group 0009 (a
    string, numbers, bytes and a 300-character text). ``extra`` sets further elements by keyword
    (applied last, so it can override anything).
    """
    if specific_character_set is None and not is_ascii(patient_name):
        specific_character_set = "ISO_IR 192"
    pixel_spacing = round(350.0 / max(rows, cols), 6)
    z = -200.0 + (instance_number - 1) * slice_thickness
    position = [-pixel_spacing * cols / 2, -pixel_spacing * rows / 2, z]
    creation_time = f"{8 + instance_number // 3600 % 10:02d}{instance_number // 60 % 60:02d}" + (
        f"{instance_number % 60:02d}"
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME

    ds = Dataset()
    ds.file_meta = meta
    if specific_character_set is not None:
        ds.SpecificCharacterSet = specific_character_set
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = study_date
    ds.InstanceCreationTime = creation_time
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.AcquisitionDate = study_date
    ds.ContentDate = study_date
    ds.StudyTime = study_time
    ds.SeriesTime = study_time
    ds.AcquisitionTime = study_time
    ds.ContentTime = creation_time
    ds.AccessionNumber = accession_number
    ds.Modality = modality
    ds.Manufacturer = "OBELISK"
    ds.InstitutionName = "SYNTHETIC HOSPITAL"
    ds.ReferringPhysicianName = "WHO^CARES"
    ds.StationName = "SYNTH01"
    ds.StudyDescription = study_description
    ds.SeriesDescription = series_description
    ds.ManufacturerModelName = "PHANTOM"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = patient_birth_date
    ds.PatientSex = patient_sex
    ds.SliceThickness = f"{slice_thickness:g}"
    ds.KVP = "120"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [f"{v:g}" for v in position]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = uid("frame-of-reference", study_uid)
    ds.PositionReferenceIndicator = ""
    if images_in_acquisition is not None:
        ds.ImagesInAcquisition = images_in_acquisition
    ds.SliceLocation = f"{z:g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.PixelSpacing = [f"{pixel_spacing:g}", f"{pixel_spacing:g}"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    if private_tags:
        _add_private_block(ds)
    z_frac = (instance_number - 1) / max(slices_in_series - 1, 1)
    seed = int(uid(sop_uid)[5:15])
    ds.add_new(0x7FE00010, "OW", _stored_values(rows, cols, z_frac, seed))
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)

    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _add_private_block(ds: Dataset) -> None:
    block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", "PRIVATE STRING")
    block.add_new(0x11, "US", [1, 2, 3])
    block.add_new(0x12, "OB", bytes(range(16)))
    block.add_new(0x13, "DS", ["1.5", "-2.25"])
    block.add_new(0x14, "UT", "X" * 300)
    block.add_new(0x15, "SL", -42)
    block.add_new(0x16, "FD", 3.14159)


def patient_name_for(index: int) -> str:
    """A deterministic ``FAMILY^GIVEN`` name; a few of them are non-ASCII."""
    family = SURNAMES[index % len(SURNAMES)]
    given = GIVEN_NAMES[(index // len(SURNAMES)) % len(GIVEN_NAMES)]
    return f"{family}^{given}"


def study_date_for(index: int) -> str:
    """Dates spread over 2015-2024 (always valid days)."""
    year = 2015 + index % 10
    month = 1 + (index * 7) % 12
    day = 1 + (index * 11) % 28
    return f"{year:04d}{month:02d}{day:02d}"


def make_dataset(
    n_studies: int,
    instances_per_study: int,
    size: int = 256,
    *,
    seed: str = "obelisk",
    studies_per_patient: int = 2,
) -> Iterator[SyntheticInstance]:
    """``n_studies`` CT studies of one series of ``instances_per_study`` ``size``x``size`` slices.

    Patients own ``studies_per_patient`` studies each; names come from :func:`patient_name_for`
    (``DOE^JOHN`` first; non-ASCII names use ``ISO_IR 192``, every third of them ``ISO_IR 100``).
    """
    for s in range(n_studies):
        p = s // studies_per_patient
        patient_id = f"{seed.upper()}-P{p:06d}"
        name = patient_name_for(p)
        charset = None
        if not is_ascii(name):
            charset = "ISO_IR 100" if p % 3 == 0 else "ISO_IR 192"
        study_uid = uid(seed, "study", s)
        series_uid = uid(seed, "series", s, 1)
        for i in range(1, instances_per_study + 1):
            sop_uid = uid(seed, "instance", s, 1, i)
            data = make_ct_instance(
                patient_id,
                name,
                study_uid,
                series_uid,
                sop_uid,
                i,
                size,
                size,
                study_date=study_date_for(s),
                study_description=("CT CHEST", "CT ABDOMEN", "CT HEAD")[s % 3],
                series_description=f"AXIAL {s % 3 + 1}.0",
                accession_number=f"ACC{s:07d}",
                patient_birth_date=f"{1940 + p % 60:04d}0{1 + p % 9}15",
                patient_sex="MF"[p % 2],
                specific_character_set=charset,
                slices_in_series=instances_per_study,
            )
            yield SyntheticInstance(patient_id, study_uid, series_uid, sop_uid, data)


def make_volume(
    slices: int = 300, size: int = 512, *, seed: str = "obelisk-volume"
) -> Iterator[SyntheticInstance]:
    """One study, one series of ``slices`` ``size``x``size`` slices (a thin-slice CT volume)."""
    patient_id = f"{seed.upper()}-P0"
    study_uid = uid(seed, "study")
    series_uid = uid(seed, "series")
    for i in range(1, slices + 1):
        sop_uid = uid(seed, "instance", i)
        data = make_ct_instance(
            patient_id,
            "DOE^JOHN",
            study_uid,
            series_uid,
            sop_uid,
            i,
            size,
            size,
            study_date="20230615",
            study_description="CT THORAX THIN",
            series_description="AXIAL 0.625",
            accession_number="ACCVOL0001",
            slice_thickness=0.625,
            slices_in_series=slices,
        )
        yield SyntheticInstance(patient_id, study_uid, series_uid, sop_uid, data)


def benchmark_sets(seed: str = "obelisk-bench") -> dict[str, list[SyntheticInstance]]:
    """The benchmark inputs (~280 MB in memory).

    ``"studies"``: 1,000 instances of 256x256 CT over 100 studies (10 slices, 1 series each);
    ``"volume"``: one 300-slice 512x512 study.
    """
    return {
        "studies": list(make_dataset(100, 10, 256, seed=seed)),
        "volume": list(make_volume(300, 512, seed=f"{seed}-volume")),
    }


#: Letters for filler names: no D, H, J, N, O, so fillers never match ``DOE*`` nor ``*OHN*``.
_FILLER_ALPHABET = "ABCEFGIKLMPRSTUVWXYZ"


def filler_name(index: int) -> str:
    letters = []
    n = index
    for _ in range(5):
        n, r = divmod(n, len(_FILLER_ALPHABET))
        letters.append(_FILLER_ALPHABET[r])
    return "".join(reversed(letters)) + "^FILLER"


def fixed_uid(*parts: object) -> str:
    """Like :func:`uid` but always 43 characters long (``2.25.1`` and 37 digits)."""
    key = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return f"2.25.1{int.from_bytes(hashlib.sha256(key).digest()[:16], 'big') % 10**37:037d}"


_TINY_PLACEHOLDERS = {
    "patient_id": "FILL9999999",
    "name": "QQQQQ^FILLER",
    "study_uid": "2.25.1" + "1" * 37,
    "series_uid": "2.25.1" + "2" * 37,
    "sop_uid": "2.25.1" + "3" * 37,
    "date": "18880808",
    "accession": "F999999999",
}


@functools.cache
def _tiny_template() -> bytes:
    ph = _TINY_PLACEHOLDERS
    return make_ct_instance(
        ph["patient_id"],
        ph["name"],
        ph["study_uid"],
        ph["series_uid"],
        ph["sop_uid"],
        1,
        8,
        8,
        study_date=ph["date"],
        study_description="FILLER",
        accession_number=ph["accession"],
    )


def make_tiny_study(index: int, *, seed: str = "obelisk-fill") -> SyntheticInstance:
    """A one-instance 8x8 CT study, for filling an index with many studies quickly.

    Built by substituting fixed-width values into one pydicom-made template (~100x faster than
    :func:`make_ct_instance`). Names never match ``DOE*``/``*OHN*``; dates span 2000-2024.
    """
    values = {
        "patient_id": f"FILL{index:07d}",
        "name": filler_name(index),
        "study_uid": fixed_uid(seed, "study", index),
        "series_uid": fixed_uid(seed, "series", index),
        "sop_uid": fixed_uid(seed, "instance", index),
        "date": f"{2000 + index % 25:04d}{1 + index % 12:02d}{1 + index % 28:02d}",
        "accession": f"F{index:09d}",
    }
    data = _tiny_template()
    for key, placeholder in _TINY_PLACEHOLDERS.items():
        value = values[key]
        assert len(value) == len(placeholder), key
        data = data.replace(placeholder.encode("ascii"), value.encode("ascii"))
    return SyntheticInstance(
        values["patient_id"], values["study_uid"], values["series_uid"], values["sop_uid"], data
    )


def write_files(instances: Sequence[SyntheticInstance], directory: Path) -> list[Path]:
    """Write ``instances`` as ``NNNNNN.dcm`` in ``directory``; returns the paths in order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, instance in enumerate(instances):
        path = directory / f"{n:06d}.dcm"
        path.write_bytes(instance.data)
        paths.append(path)
    return paths


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def code_sequence(*items: Dataset) -> DicomSequence:
    return DicomSequence(list(items))
