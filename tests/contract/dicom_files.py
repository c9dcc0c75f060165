"""Small DICOM files written with pydicom, and the index inputs parsed from them.

The tree is chosen for the search tests: names with case and accent variants, identifiers holding
``%``, ``_`` and ``[`` (LIKE and GLOB characters that must stay literal), a few dates, modalities.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian

from obelisk.core.changes import MetadataType
from obelisk.core.levels import Level
from obelisk.core.parsing import ParsedInstance, parse_instance
from obelisk.index.base import Attachment, NewInstance

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_ROOT = "1.2.826.0.1.3680043.8.498"


@dataclass(frozen=True)
class InstanceSpec:
    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    study_description: str
    series_uid: str
    modality: str
    sop_uid: str
    instance_number: int
    referring_physician: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def make_dicom(spec: InstanceSpec) -> bytes:
    """A Part 10 file, explicit VR little endian, UTF-8, with a tiny pixel data element."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = spec.sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = f"{_ROOT}.1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = spec.sop_uid
    ds.PatientID = spec.patient_id
    ds.PatientName = spec.patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = spec.study_uid
    ds.StudyDate = spec.study_date
    ds.StudyTime = "101500"
    ds.StudyDescription = spec.study_description
    ds.AccessionNumber = f"ACC{zlib.crc32(spec.study_uid.encode()) % 10000:04d}"
    if spec.referring_physician:
        ds.ReferringPhysicianName = spec.referring_physician
    ds.SeriesInstanceUID = spec.series_uid
    ds.Modality = spec.modality
    ds.SeriesNumber = "1"
    ds.SeriesDescription = f"{spec.modality} series"
    ds.InstanceNumber = str(spec.instance_number)
    for keyword, value in spec.extra.items():
        setattr(ds, keyword, value)
    ds.Rows = 2
    ds.Columns = 2
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes([0, 64, 128, 255])

    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _uid(*parts: int) -> str:
    return ".".join([_ROOT, *map(str, parts)])


# (patient id, patient name, [(study date, description, referring, [(modality, instances)])])
_TREE: list[tuple[str, str, list[tuple[str, str, str, list[tuple[str, int]]]]]] = [
    (
        "DOE1",
        "Doe^John",
        [
            ("20200101", "CT Head", "Dupont^Éric", [("CT", 2), ("MR", 1)]),
            ("20200131", "ct head", "", [("CT", 1)]),
        ],
    ),
    ("DOE2", "DOE^JANE", [("20200115", "MR Knee", "DUPONT^ERIC", [("MR", 2)])]),
    ("MUE1", "Müller^Jürgen", [("20200201", "Chest 50% dose", "", [("CT", 1), ("US", 1)])]),
    ("A%1", "Percent^Pat", [("20191231", "Under_line", "", [("CT", 1)])]),
    ("A_1", "Under^Score", [("20210610", "Bracket [a] study", "", [("MR", 1)])]),
    ("AB1", "Smith^Ann", [("20200115", "CT HEAD", "", [("US", 1)])]),
    ("BR[1]", "Bracket[1]^Name", [("20220101", "Johnson exam", "", [("CT", 1)])]),
]


def sample_specs() -> list[InstanceSpec]:
    """7 patients, 8 studies, 10 series, 12 instances."""
    specs: list[InstanceSpec] = []
    for p, (patient_id, name, studies) in enumerate(_TREE, start=1):
        for s, (date, description, referring, series) in enumerate(studies, start=1):
            for r, (modality, count) in enumerate(series, start=1):
                for i in range(1, count + 1):
                    specs.append(
                        InstanceSpec(
                            patient_id=patient_id,
                            patient_name=name,
                            study_uid=_uid(p, s),
                            study_date=date,
                            study_description=description,
                            series_uid=_uid(p, s, r),
                            modality=modality,
                            sop_uid=_uid(p, s, r, i),
                            instance_number=i,
                            referring_physician=referring,
                        )
                    )
    return specs


def attachment_for(data: bytes, uuid: str, content_type: int = 1) -> Attachment:
    md5 = hashlib.md5(data).hexdigest()
    return Attachment(
        content_type=content_type,
        uuid=uuid,
        uncompressed_size=len(data),
        uncompressed_md5=md5,
        compressed_size=len(data),
        compressed_md5=md5,
    )


def new_instance(parsed: ParsedInstance, data: bytes, uuid: str) -> NewInstance:
    """What the ingest service would hand the index for this file."""
    metadata = {
        int(MetadataType.TransferSyntax): parsed.transfer_syntax,
        int(MetadataType.SopClassUid): parsed.sop_class_uid,
        int(MetadataType.ReceptionDate): "20240101T120000",
        int(MetadataType.Origin): "Unknown",
    }
    if parsed.index_in_series is not None:
        metadata[int(MetadataType.IndexInSeries)] = str(parsed.index_in_series)
    return NewInstance(
        public_ids=parsed.ids.by_level(),
        main_tags=parsed.main_tags,
        attachments=[attachment_for(data, uuid)],
        metadata=metadata,
    )


@dataclass(frozen=True)
class SampleInstance:
    spec: InstanceSpec
    data: bytes
    parsed: ParsedInstance
    new: NewInstance

    def public_id(self, level: Level) -> str:
        return self.parsed.ids.by_level()[level]


def sample_instances(specs: list[InstanceSpec] | None = None) -> Iterator[SampleInstance]:
    for number, spec in enumerate(specs if specs is not None else sample_specs()):
        data = make_dicom(spec)
        parsed = parse_instance(data)
        uuid = hashlib.sha1(f"{spec.sop_uid}|{number}".encode()).hexdigest()
        uuid = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:32]}"
        yield SampleInstance(spec, data, parsed, new_instance(parsed, data, uuid))
