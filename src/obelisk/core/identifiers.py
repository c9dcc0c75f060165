"""Orthanc's resource identifiers: SHA-1 of the DICOM identifiers, as five 8-hex-digit groups."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def orthanc_hash(text: str) -> str:
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


@dataclass(frozen=True, slots=True)
class ResourceIds:
    """The public identifiers of an instance and its three ancestors."""

    patient: str
    study: str
    series: str
    instance: str

    @classmethod
    def compute(
        cls, patient_id: str, study_uid: str, series_uid: str, sop_instance_uid: str
    ) -> ResourceIds:
        study_key = f"{patient_id}|{study_uid}"
        series_key = f"{study_key}|{series_uid}"
        return cls(
            patient=orthanc_hash(patient_id),
            study=orthanc_hash(study_key),
            series=orthanc_hash(series_key),
            instance=orthanc_hash(f"{series_key}|{sop_instance_uid}"),
        )

    def by_level(self) -> tuple[str, str, str, str]:
        return (self.patient, self.study, self.series, self.instance)


def looks_like_orthanc_id(text: str) -> bool:
    parts = text.split("-")
    return len(parts) == 5 and all(
        len(p) == 8 and all(c in "0123456789abcdef" for c in p) for p in parts
    )
