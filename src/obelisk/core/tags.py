"""DICOM tag names and Orthanc's "main DICOM tags" per level (Orthanc 1.10.1's set).

Tags are plain ``int`` (``0xGGGGEEEE``) in Python code; Orthanc's text forms are ``gggg,eeee``
(lower-case hex) and the DICOM keyword.
"""

from __future__ import annotations

from pydicom.datadict import dictionary_keyword, dictionary_VR, tag_for_keyword

from obelisk.core.levels import Level

PATIENT_MAIN_TAGS: tuple[tuple[int, str], ...] = (
    (0x00100010, "PatientName"),
    (0x00100020, "PatientID"),
    (0x00100030, "PatientBirthDate"),
    (0x00100040, "PatientSex"),
    (0x00101000, "OtherPatientIDs"),
)

STUDY_MAIN_TAGS: tuple[tuple[int, str], ...] = (
    (0x00080020, "StudyDate"),
    (0x00080030, "StudyTime"),
    (0x00200010, "StudyID"),
    (0x00081030, "StudyDescription"),
    (0x00080050, "AccessionNumber"),
    (0x0020000D, "StudyInstanceUID"),
    (0x00321060, "RequestedProcedureDescription"),
    (0x00080080, "InstitutionName"),
    (0x00321032, "RequestingPhysician"),
    (0x00080090, "ReferringPhysicianName"),
)

SERIES_MAIN_TAGS: tuple[tuple[int, str], ...] = (
    (0x00080021, "SeriesDate"),
    (0x00080031, "SeriesTime"),
    (0x00080060, "Modality"),
    (0x00080070, "Manufacturer"),
    (0x00081010, "StationName"),
    (0x0008103E, "SeriesDescription"),
    (0x00180015, "BodyPartExamined"),
    (0x00180024, "SequenceName"),
    (0x00181030, "ProtocolName"),
    (0x00200011, "SeriesNumber"),
    (0x00181090, "CardiacNumberOfImages"),
    (0x00201002, "ImagesInAcquisition"),
    (0x00200105, "NumberOfTemporalPositions"),
    (0x00540081, "NumberOfSlices"),
    (0x00540101, "NumberOfTimeSlices"),
    (0x0020000E, "SeriesInstanceUID"),
    (0x00200037, "ImageOrientationPatient"),
    (0x00541000, "SeriesType"),
    (0x00081070, "OperatorsName"),
    (0x00400254, "PerformedProcedureStepDescription"),
    (0x00181400, "AcquisitionDeviceProcessingDescription"),
    (0x00180010, "ContrastBolusAgent"),
)

INSTANCE_MAIN_TAGS: tuple[tuple[int, str], ...] = (
    (0x00080012, "InstanceCreationDate"),
    (0x00080013, "InstanceCreationTime"),
    (0x00200012, "AcquisitionNumber"),
    (0x00541330, "ImageIndex"),
    (0x00200013, "InstanceNumber"),
    (0x00280008, "NumberOfFrames"),
    (0x00200100, "TemporalPositionIdentifier"),
    (0x00080018, "SOPInstanceUID"),
    (0x00200032, "ImagePositionPatient"),
    (0x00200037, "ImageOrientationPatient"),
)

MAIN_TAGS: dict[Level, tuple[tuple[int, str], ...]] = {
    Level.PATIENT: PATIENT_MAIN_TAGS,
    Level.STUDY: STUDY_MAIN_TAGS,
    Level.SERIES: SERIES_MAIN_TAGS,
    Level.INSTANCE: INSTANCE_MAIN_TAGS,
}

#: Every tag the index needs from a file header, with the first level that stores it.
INDEXED_TAGS: dict[int, str] = {tag: name for level in Level for tag, name in MAIN_TAGS[level]}

#: The tags that identify a resource at each level (Orthanc's DicomIdentifiers).
IDENTIFIER_TAGS: dict[Level, int] = {
    Level.PATIENT: 0x00100020,
    Level.STUDY: 0x0020000D,
    Level.SERIES: 0x0020000E,
    Level.INSTANCE: 0x00080018,
}

_MAIN_TAG_LEVEL: dict[int, Level] = {}
for _level in reversed(Level):  # the highest level wins (ImageOrientationPatient → series)
    for _tag, _ in MAIN_TAGS[_level]:
        _MAIN_TAG_LEVEL[_tag] = _level


def main_tag_level(tag: int) -> Level | None:
    """The level whose main tags hold ``tag``, or ``None`` when it is not a main tag."""
    return _MAIN_TAG_LEVEL.get(tag)


def format_tag(tag: int) -> str:
    """``0x00100010`` → ``"0010,0010"``."""
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


#: Orthanc's name for tags missing from the dictionary (private data, mostly).
UNKNOWN_NAME = "Unknown Tag & Data"


def keyword(tag: int) -> str:
    """DICOM keyword of ``tag``, or :data:`UNKNOWN_NAME` for private and unknown ones."""
    try:
        return str(dictionary_keyword(tag)) or UNKNOWN_NAME
    except KeyError:
        return UNKNOWN_NAME


def vr_of(tag: int) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def parse_tag(text: str) -> int:
    """Parses a keyword (``PatientName``), ``0010,0010``, ``0010-0010`` or ``00100010``.

    Raises ``ValueError`` for anything else.
    """
    text = text.strip()
    for sep in (",", "-", "|"):
        if sep in text:
            group, _, element = text.partition(sep)
            if len(group) == 4 and len(element) == 4:
                return (int(group, 16) << 16) | int(element, 16)
            raise ValueError(f"Not a DICOM tag: {text}")
    if len(text) == 8 and all(c in "0123456789abcdefABCDEF" for c in text):
        return int(text, 16)
    found = tag_for_keyword(text)
    if found is None:
        raise ValueError(f"Unknown DICOM tag: {text}")
    return int(found)
