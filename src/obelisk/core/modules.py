"""The DICOM modules ``/{level}/{id}/module`` answers with (PS3.3 tables, as Orthanc 1.10 uses).

Patient: C.7-1 Patient Module (with the Issuer of Patient ID macro); study: C.7-3 General Study;
series: C.7-5 General Series (with the Performed Procedure Step Summary macro); instance: C.12-1
SOP Common (with the Digital Signatures macro).
"""

from __future__ import annotations

from pydicom.datadict import tag_for_keyword

from obelisk.core.levels import Level

_KEYWORDS: dict[Level, tuple[str, ...]] = {
    Level.PATIENT: (
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "ReferencedPatientSequence",
        "PatientBirthTime", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
        "EthnicGroup", "PatientComments", "PatientSpeciesDescription",
        "PatientSpeciesCodeSequence", "PatientBreedDescription", "PatientBreedCodeSequence",
        "BreedRegistrationSequence", "ResponsiblePerson", "ResponsiblePersonRole",
        "ResponsibleOrganization", "PatientIdentityRemoved", "DeidentificationMethod",
        "DeidentificationMethodCodeSequence", "IssuerOfPatientID",
        "IssuerOfPatientIDQualifiersSequence",
    ),
    Level.STUDY: (
        "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
        "ReferringPhysicianIdentificationSequence", "StudyID", "AccessionNumber",
        "IssuerOfAccessionNumberSequence", "StudyDescription", "PhysiciansOfRecord",
        "PhysiciansOfRecordIdentificationSequence", "NameOfPhysiciansReadingStudy",
        "PhysiciansReadingStudyIdentificationSequence", "RequestingServiceCodeSequence",
        "ReferencedStudySequence", "ProcedureCodeSequence",
        "ReasonForPerformedProcedureCodeSequence",
    ),
    Level.SERIES: (
        "Modality", "SeriesInstanceUID", "SeriesNumber", "Laterality", "SeriesDate", "SeriesTime",
        "PerformingPhysicianName", "PerformingPhysicianIdentificationSequence", "ProtocolName",
        "SeriesDescription", "SeriesDescriptionCodeSequence", "OperatorsName",
        "OperatorIdentificationSequence", "ReferencedPerformedProcedureStepSequence",
        "RelatedSeriesSequence", "BodyPartExamined", "PatientPosition",
        "SmallestPixelValueInSeries", "LargestPixelValueInSeries", "RequestAttributesSequence",
        "AnatomicalOrientationType", "PerformedProcedureStepID",
        "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
        "PerformedProcedureStepDescription", "PerformedProtocolCodeSequence",
        "CommentsOnThePerformedProcedureStep",
    ),
    Level.INSTANCE: (
        "SOPClassUID", "SOPInstanceUID", "SpecificCharacterSet", "InstanceCreationDate",
        "InstanceCreationTime", "InstanceCreatorUID", "RelatedGeneralSOPClassUID",
        "OriginalSpecializedSOPClassUID", "CodingSchemeIdentificationSequence",
        "TimezoneOffsetFromUTC", "ContributingEquipmentSequence", "InstanceNumber",
        "SOPInstanceStatus", "SOPAuthorizationDateTime", "SOPAuthorizationComment",
        "AuthorizationEquipmentCertificationNumber", "EncryptedAttributesSequence",
        "OriginalAttributesSequence", "HL7StructuredDocumentReferenceSequence",
        "LongitudinalTemporalInformationModified", "MACParametersSequence",
        "DigitalSignaturesSequence",
    ),
}  # fmt: skip


def _tags(keywords: tuple[str, ...]) -> frozenset[int]:
    tags = set()
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise KeyError(f"pydicom does not know {keyword}")
        tags.add(int(tag))
    return frozenset(tags)


MODULE_TAGS: dict[Level, frozenset[int]] = {level: _tags(k) for level, k in _KEYWORDS.items()}
