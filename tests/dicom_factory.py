"""Small DICOM files for the tests, built with pydicom (explicit VR little endian)."""

from __future__ import annotations

import io
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def make_dicom(
    *,
    patient_id: str = "P001",
    patient_name: str = "DOE^JOHN",
    study_uid: str = "1.2.3",
    series_uid: str = "1.2.3.4",
    sop_uid: str = "1.2.3.4.5",
    instance_number: int = 1,
    study_date: str = "20220323",
    modality: str = "CT",
    charset: str | None = None,
    extra: dict[str, Any] | None = None,
    size: int = 16,
) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = study_date
    ds.StudyTime = "120000"
    ds.StudyDescription = "Sample CT"
    ds.AccessionNumber = "ACC1"
    ds.SeriesDescription = "Axial"
    ds.SeriesNumber = 1
    ds.Modality = modality
    ds.InstanceNumber = instance_number
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = ["0", "0", str(instance_number)]
    for key, value in (extra or {}).items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(range(256)) * (size * size // 256) + bytes(size * size % 256)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_series(count: int, **kwargs: Any) -> list[bytes]:
    series_uid = kwargs.pop("series_uid", "1.2.3.4")
    return [
        make_dicom(series_uid=series_uid, sop_uid=f"{series_uid}.{n}", instance_number=n, **kwargs)
        for n in range(1, count + 1)
    ]
