"""Small DICOM images with known pixels, for the rendering tests (pydicom + Pillow)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless, generate_uid

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def make_image(
    pixels: NDArray[np.generic],
    *,
    photometric: str = "MONOCHROME2",
    frames: int = 1,
    sop_uid: str | None = None,
    study_uid: str = "1.2.826.0.1.3680043.8.498.1",
    series_uid: str = "1.2.826.0.1.3680043.8.498.1.1",
    **tags: Any,
) -> Dataset:
    """A dataset whose pixel data is ``pixels`` (frames first when ``frames`` > 1)."""
    color = photometric in ("RGB", "YBR_FULL", "YBR_FULL_422")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = "PIX"
    ds.PatientName = "PIXEL^TEST"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "OT"
    ds.InstanceNumber = 1
    shape = pixels.shape[1:] if frames > 1 else pixels.shape
    ds.Rows, ds.Columns = int(shape[0]), int(shape[1])
    ds.SamplesPerPixel = 3 if color else 1
    if color:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def rle(ds: Dataset) -> Dataset:
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    return ds


def jpeg_baseline(ds: Dataset, quality: int = 95) -> Dataset:
    """8-bit MONOCHROME2/RGB frames re-encoded with Pillow as JPEG baseline, encapsulated."""
    frames = ds.pixel_array if int(ds.get("NumberOfFrames", 1)) > 1 else ds.pixel_array[None]
    streams = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        streams.append(buffer.getvalue())
    ds.PixelData = encapsulate(streams)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    if ds.SamplesPerPixel == 3:
        ds.PhotometricInterpretation = "YBR_FULL_422"
    return ds


def gradient(rows: int = 32, cols: int = 32, high: int = 4095) -> NDArray[np.uint16]:
    """Values rising from 0 (left) to ``high`` (right), the same on every row."""
    row = np.linspace(0, high, cols).round().astype(np.uint16)
    return np.tile(row, (rows, 1))


def decode_png(data: bytes) -> NDArray[np.generic]:
    return np.asarray(Image.open(io.BytesIO(data)))


def ct_series(
    count: int, *, study_uid: str, series_uid: str, description: str, rows: int = 64
) -> list[bytes]:
    """``count`` CT-like slices of a sphere, each visibly different, with a soft-tissue window."""
    yy, xx = np.mgrid[0:rows, 0:rows]
    slices = []
    for n in range(count):
        radius = rows / 3 * (1 - abs(n - count / 2) / count)
        disc = ((yy - rows / 2) ** 2 + (xx - rows / 2) ** 2) < radius**2
        pixels = np.where(disc, 1000 + 40 * n, 0).astype(np.uint16)
        ds = make_image(
            pixels,
            study_uid=study_uid,
            series_uid=series_uid,
            sop_uid=f"{series_uid}.{n + 1}",
            InstanceNumber=n + 1,
            RescaleSlope=1,
            RescaleIntercept=-1000,
            WindowCenter=100,
            WindowWidth=600,
            StudyDescription=description,
            SeriesDescription=f"{description} axial",
            StudyDate="20240115",
            StudyTime="101500",
            PatientName=f"{description.upper()}^PATIENT",
            PatientID=f"ID-{description}",
            SeriesNumber=1,
            ImagePositionPatient=[0, 0, float(n)],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            PixelSpacing=[1, 1],
            SliceThickness=1,
            FrameOfReferenceUID=f"{study_uid}.9",
        )
        ds.Modality = "CT"
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        slices.append(to_bytes(ds))
    return slices
