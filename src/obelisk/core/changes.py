"""Orthanc's change types (the ``/changes`` log) and metadata types, with their numbers."""

from __future__ import annotations

import enum


class ChangeType(enum.IntEnum):
    CompletedSeries = 1
    Deleted = 2
    NewChildInstance = 3
    NewInstance = 4
    NewPatient = 5
    NewSeries = 6
    NewStudy = 7
    AnonymizedStudy = 8
    AnonymizedSeries = 9
    ModifiedStudy = 10
    ModifiedSeries = 11
    AnonymizedPatient = 12
    ModifiedPatient = 13
    StablePatient = 14
    StableStudy = 15
    StableSeries = 16
    UpdatedAttachment = 17
    UpdatedMetadata = 18


class MetadataType(enum.IntEnum):
    """Orthanc's built-in metadata; user metadata lives in 1024–65535 (``UserMetadata``)."""

    IndexInSeries = 1
    ReceptionDate = 2
    RemoteAET = 3
    ExpectedNumberOfInstances = 4
    ModifiedFrom = 5
    AnonymizedFrom = 6
    LastUpdate = 7
    Origin = 8
    TransferSyntax = 9
    SopClassUid = 10
    RemoteIP = 11
    CalledAET = 12
    HttpUsername = 13
    PixelDataOffset = 14


class ContentType(enum.IntEnum):
    """Attachment types; user-defined ones live in 1024–65535 (``UserContentType``)."""

    Dicom = 1
    DicomAsJson = 2
    DicomUntilPixelData = 3


CONTENT_TYPE_NAMES = {
    ContentType.Dicom: "dicom",
    ContentType.DicomAsJson: "dicom-as-json",
    ContentType.DicomUntilPixelData: "dicom-until-pixel-data",
}

USER_RANGE = range(1024, 65536)
