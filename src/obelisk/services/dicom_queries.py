"""C-FIND identifiers as Orthanc builds them: the normalised queries of ``/queries``, the
per-level templates of ``find-*`` and ``/modalities/{id}/find``, worklist queries, and the JSON
styles of the answers."""

from __future__ import annotations

from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR

from obelisk.core.dicom_json import full_tags, shorten, simplify
from obelisk.core.levels import Level
from obelisk.core.tags import MAIN_TAGS, format_tag, parse_tag
from obelisk.errors import BadFileFormat, BadRequest, ErrorCode, ObeliskError

#: The identifiers of an answer that restrict a query one level below it.
PARENT_KEYS = {
    Level.STUDY: ("PatientID",),
    Level.SERIES: ("PatientID", "StudyInstanceUID"),
    Level.INSTANCE: ("PatientID", "StudyInstanceUID", "SeriesInstanceUID"),
}
#: Keys added to a query when absent (Orthanc's normalisation), so answers can be retrieved.
_QUERY_KEYS = {
    Level.PATIENT: ("PatientID",),
    Level.STUDY: ("AccessionNumber", "StudyInstanceUID"),
    Level.SERIES: ("StudyInstanceUID", "SeriesInstanceUID"),
    Level.INSTANCE: ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}

#: The deprecated ``find-*`` routes and ``/modalities/{id}/find`` (Orthanc's C-FIND templates).
#: A level sends its main tags, except those its normalisation drops as outside the level's
#: DICOM module (Orthanc's ``DicomTag::AddTagsForModule``), plus the upper-level keys of the
#: template (empty unless the body gives them); ``ModalitiesInStudy`` only when given.
_OUTSIDE_MODULE = {
    Level.STUDY: frozenset({0x00080080, 0x00321032, 0x00321060}),
    Level.SERIES: frozenset(
        {
            0x00080070,
            0x00081010,
            0x00180024,
            0x00181090,
            0x00201002,
            0x00540081,
            0x00200105,
            0x00540101,
            0x00200037,
            0x00541000,
            0x00181400,
            0x00180010,
        }
    ),
    Level.INSTANCE: frozenset(
        {0x00200012, 0x00541330, 0x00280008, 0x00200100, 0x00200032, 0x00200037}
    ),
}
_TEMPLATE_UPPER = {
    Level.PATIENT: (),
    Level.STUDY: (0x00080050, 0x00100020),
    Level.SERIES: (0x00080050, 0x00100020, 0x0020000D),
    Level.INSTANCE: (0x00080050, 0x00100020, 0x0020000D, 0x0020000E),
}
_TEMPLATE_OPTIONAL = {Level.STUDY: (0x00080061,)}
#: ``find-study|series|instance``: Orthanc leaves the request unanswered (a bare 400) unless
#: one of the first tags and every one of the others is longer than two bytes.
_REQUIRED_KEYS = {
    Level.STUDY: ((0x00100020, 0x00080050), ()),
    Level.SERIES: ((0x00100020, 0x00080050), (0x0020000D,)),
    Level.INSTANCE: ((0x00100020, 0x00080050), (0x0020000D, 0x0020000E)),
}
PATIENT_ID = 0x00100020
STUDY_INSTANCE_UID = 0x0020000D
#: ``DefaultEncoding`` → the Specific Character Set of C-FIND queries and answers.
CHARSETS = {"Ascii": "ISO_IR 6", "Latin1": "ISO_IR 100", "Utf8": "ISO_IR 192"}


def find_fields(body: dict[str, Any]) -> dict[int, str]:
    """The body of the deprecated ``find-*`` routes: tag → value (strings, numbers, booleans or
    null, written as Orthanc's JSON ``asString`` writes them)."""
    fields: dict[int, str] = {}
    for key, value in body.items():
        tag = _tag_of(key)
        if isinstance(value, dict | list):
            raise ObeliskError(
                f"Bad Parameter type for tag {format_tag(tag)}", code=ErrorCode.BadParameterType
            )
        if isinstance(value, bool):
            fields[tag] = "true" if value else "false"
        else:
            fields[tag] = "" if value is None else str(value)
    return fields


def level_fields(level: Level, fields: dict[int, str], upper: dict[int, str]) -> dict[int, str]:
    """What a ``find-*`` C-FIND at ``level`` asks: Orthanc's template of the level, with the
    request's ``fields`` and the ``upper`` keys of a parent answer filled in; keys of other
    levels and tags outside the level's module are left out."""
    left_out = _OUTSIDE_MODULE.get(level, frozenset())
    template = [tag for tag, _ in MAIN_TAGS[level] if tag not in left_out]
    template += _TEMPLATE_UPPER[level]
    kept = {*template, *_TEMPLATE_OPTIONAL.get(level, ())}
    merged = dict.fromkeys(template, "")
    merged.update((tag, value) for tag, value in fields.items() if tag in kept)
    merged.update((tag, value) for tag, value in upper.items() if tag in kept)
    return merged


def specific_enough(level: Level, fields: dict[int, str]) -> bool:
    """Orthanc's guard of ``find-study|series|instance``: a ``PatientID`` or ``AccessionNumber``
    and (below the study level) the upper UIDs longer than two bytes (UTF-8)."""
    if level not in _REQUIRED_KEYS:
        return True
    any_of, all_of = _REQUIRED_KEYS[level]

    def long(tag: int) -> bool:
        return len(fields.get(tag, "").encode("utf-8")) > 2

    return any(long(tag) for tag in any_of) and all(long(tag) for tag in all_of)


def _tag_of(key: Any) -> int:
    try:
        return parse_tag(str(key))
    except ValueError as exc:
        raise ObeliskError(f"Unknown DICOM tag: {key}", code=ErrorCode.UnknownDicomTag) from exc


def worklist_identifier(query: Any) -> pydicom.Dataset:
    """A worklist C-FIND identifier from Orthanc's JSON: tag → string (or null), or a list of
    such objects for a sequence."""
    if not isinstance(query, dict):
        raise ObeliskError(
            "The worklist query must be a JSON object", code=ErrorCode.BadParameterType
        )
    identifier = pydicom.Dataset()
    for key, value in query.items():
        tag = _tag_of(key)
        vr = dictionary_VR(tag) if _known(tag) else "LO"
        if value is None or (isinstance(value, str) and vr != "SQ"):
            identifier.add_new(tag, vr, value or None)
        elif isinstance(value, list) and vr == "SQ":
            identifier.add_new(tag, vr, [worklist_identifier(item) for item in value])
        else:
            raise ObeliskError(
                f"Bad Parameter type for tag {format_tag(tag)}", code=ErrorCode.BadParameterType
            )
    return identifier


def answer_style(body: dict[str, Any]) -> str:
    """``Simplify``/``Short``/``Full`` in a request body (Orthanc's precedence); ``simplify``."""
    for key, style in (("Simplify", "simplify"), ("Short", "short"), ("Full", "full")):
        value = body.get(key, False)
        if not isinstance(value, bool):
            raise BadFileFormat(f"Boolean value expected in field: {key}")
        if value:
            return style
    return "simplify"


def tag_format(dataset: pydicom.Dataset, style: str) -> dict[str, Any]:
    """Orthanc's three JSON styles of a dataset: ``full`` (default), ``simplify``, ``short``."""
    full = full_tags(dataset)
    if style == "simplify":
        return simplify(full)
    if style == "short":
        return shorten(full)
    return full


def build_identifier(level: Level, query: dict[str, Any], *, normalize: bool) -> pydicom.Dataset:
    identifier = pydicom.Dataset()
    for key, value in query.items():
        try:
            tag = parse_tag(str(key))
        except ValueError as exc:
            raise BadRequest(f"Unknown DICOM tag in the query: {key}") from exc
        if not isinstance(value, str):
            raise BadRequest(f"The value of {key} in the query must be a string")
        identifier.add_new(tag, dictionary_VR(tag) if _known(tag) else "LO", value)
    if normalize:
        for keyword in _QUERY_KEYS[level]:
            if keyword not in identifier:
                setattr(identifier, keyword, "")
    identifier.QueryRetrieveLevel = "IMAGE" if level is Level.INSTANCE else level.name
    return identifier


def _known(tag: int) -> bool:
    try:
        dictionary_VR(tag)
    except KeyError:
        return False
    return True
