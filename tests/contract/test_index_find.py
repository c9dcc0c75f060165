"""``find``: every kind of constraint, on every level, in SQL, against the in-memory matcher.

Each case states its expected answer and is also checked against :meth:`Constraint.matches`
applied to the parsed files, so the index and the C-FIND filter cannot drift apart.
"""

from __future__ import annotations

import pytest

from obelisk.core.levels import Level
from obelisk.core.matching import Constraint, ConstraintKind, parse_constraint
from obelisk.core.tags import INDEXED_TAGS, main_tag_level, parse_tag
from obelisk.index.sqlite import SqliteIndex

from .conftest import Loaded
from .dicom_files import SampleInstance


def _constraints(query: dict[str, str], *, case_sensitive: bool = False) -> list[Constraint]:
    made = [
        parse_constraint(parse_tag(k), v, case_sensitive=case_sensitive) for k, v in query.items()
    ]
    return [c for c in made if c is not None]


def _value(sample: SampleInstance, tag: int) -> str | None:
    level = main_tag_level(tag)
    assert level is not None
    return sample.parsed.main_tags[level].get(INDEXED_TAGS[tag])


def _oracle(loaded: Loaded, level: Level, constraints: list[Constraint]) -> list[str]:
    result: list[str] = []
    for public_id in loaded.public_ids(level):
        sample = next(s for s in loaded.samples if s.public_id(level) == public_id)
        if all(c.matches(_value(sample, c.tag)) for c in constraints):
            result.append(public_id)
    return result


def _label(sample: SampleInstance, level: Level) -> str:
    spec = sample.spec
    if level is Level.PATIENT:
        return spec.patient_id
    if level is Level.STUDY:
        return spec.study_description
    if level is Level.SERIES:
        return f"{spec.study_description}/{spec.modality}"
    return f"{spec.study_description}/{spec.modality}/{spec.instance_number}"


def _find(
    loaded: Loaded,
    level: Level,
    constraints: list[Constraint],
    *,
    since: int = 0,
    limit: int | None = None,
) -> list[str]:
    """The public ids found, in Orthanc's order (checked), then put back in storage order."""
    public_ids = _find_in_orthanc_order(loaded, level, constraints, since=since, limit=limit)
    stored_order = loaded.public_ids(level)
    return sorted(public_ids, key=stored_order.index)


def _find_in_orthanc_order(
    loaded: Loaded,
    level: Level,
    constraints: list[Constraint],
    *,
    since: int = 0,
    limit: int | None = None,
) -> list[str]:
    ids = loaded.index.find(level, constraints, since=since, limit=limit)
    by_id = {
        r.internal_id: r.public_id for r in loaded.index.get_by_internal_ids(ids, children=False)
    }
    public_ids = [by_id[i] for i in ids]
    if level is Level.INSTANCE:
        assert ids == sorted(ids), "instances come in the order they were stored"
    else:
        assert public_ids == sorted(public_ids), "other levels come by public id"
    return public_ids


def _labels(loaded: Loaded, level: Level, public_ids: list[str]) -> list[str]:
    by_id = {s.public_id(level): s for s in loaded.samples}
    return [_label(by_id[p], level) for p in public_ids]


ALL_STUDIES = [
    "CT Head",
    "ct head",
    "MR Knee",
    "Chest 50% dose",
    "Under_line",
    "Bracket [a] study",
    "CT HEAD",
    "Johnson exam",
]

#: Searches as ``/tools/find`` runs them by default (``CaseSensitive`` false): every string tag
#: matches whatever its case and accents; dates and times compare as they are.
CASES: list[tuple[str, Level, dict[str, str], list[str]]] = [
    # person names: case and accent insensitive
    ("pn prefix", Level.PATIENT, {"PatientName": "doe*"}, ["DOE1", "DOE2"]),
    ("pn equal any case", Level.PATIENT, {"PatientName": "DOE^john"}, ["DOE1"]),
    ("pn without accents", Level.PATIENT, {"PatientName": "muller^jurgen"}, ["MUE1"]),
    ("pn with accents", Level.PATIENT, {"PatientName": "MÜLLER*"}, ["MUE1"]),
    ("pn accent inside", Level.PATIENT, {"PatientName": "*ürg*"}, ["MUE1"]),
    ("pn leading wildcard", Level.PATIENT, {"PatientName": "*OHN*"}, ["DOE1"]),
    ("pn question mark", Level.PATIENT, {"PatientName": "?oe^*"}, ["DOE1", "DOE2"]),
    ("pn inner question mark", Level.PATIENT, {"PatientName": "D?E^J*"}, ["DOE1", "DOE2"]),
    ("pn list", Level.PATIENT, {"PatientName": "doe^john\\smith^ann"}, ["DOE1", "AB1"]),
    ("pn no match", Level.PATIENT, {"PatientName": "doe"}, []),
    # other tags: LIKE/GLOB characters taken literally
    ("id equal", Level.PATIENT, {"PatientID": "DOE1"}, ["DOE1"]),
    ("id any case", Level.PATIENT, {"PatientID": "doe1"}, ["DOE1"]),
    ("percent equal", Level.PATIENT, {"PatientID": "A%1"}, ["A%1"]),
    ("percent prefix", Level.PATIENT, {"PatientID": "A%*"}, ["A%1"]),
    ("underscore prefix", Level.PATIENT, {"PatientID": "A_*"}, ["A_1"]),
    ("question mark", Level.PATIENT, {"PatientID": "A?1"}, ["A%1", "A_1", "AB1"]),
    ("bracket equal", Level.PATIENT, {"PatientID": "BR[1]"}, ["BR[1]"]),
    ("bracket prefix", Level.PATIENT, {"PatientID": "BR[1*"}, ["BR[1]"]),
    ("bracket suffix", Level.PATIENT, {"PatientID": "*[1]"}, ["BR[1]"]),
    ("bracket not a set", Level.PATIENT, {"PatientID": "BR[12]"}, []),
    ("bracket and question", Level.PATIENT, {"PatientID": "BR[?]"}, ["BR[1]"]),
    ("id list", Level.PATIENT, {"PatientID": "DOE1\\AB1\\NOPE"}, ["DOE1", "AB1"]),
    (
        "birth date range",
        Level.PATIENT,
        {"PatientBirthDate": "19600101-19800101"},
        ["DOE1", "DOE2", "MUE1", "A%1", "A_1", "AB1", "BR[1]"],
    ),
    ("study any case", Level.STUDY, {"StudyDescription": "CT*"}, ["CT Head", "ct head", "CT HEAD"]),
    ("percent inside", Level.STUDY, {"StudyDescription": "*50%*"}, ["Chest 50% dose"]),
    ("lone percent", Level.STUDY, {"StudyDescription": "*%*"}, ["Chest 50% dose"]),
    ("lone underscore", Level.STUDY, {"StudyDescription": "*_*"}, ["Under_line"]),
    ("underscore equal", Level.STUDY, {"StudyDescription": "Under_line"}, ["Under_line"]),
    ("underscore literal", Level.STUDY, {"StudyDescription": "UnderXline"}, []),
    ("question for underscore", Level.STUDY, {"StudyDescription": "Under?line"}, ["Under_line"]),
    ("bracket set literal", Level.STUDY, {"StudyDescription": "*[a]*"}, ["Bracket [a] study"]),
    ("bracket no set", Level.STUDY, {"StudyDescription": "*[ab]*"}, []),
    # dates
    (
        "closed range",
        Level.STUDY,
        {"StudyDate": "20200101-20200131"},
        ["CT Head", "ct head", "MR Knee", "CT HEAD"],
    ),
    (
        "open lower",
        Level.STUDY,
        {"StudyDate": "-20200115"},
        ["CT Head", "MR Knee", "Under_line", "CT HEAD"],
    ),
    (
        "open upper",
        Level.STUDY,
        {"StudyDate": "20200201-"},
        ["Chest 50% dose", "Bracket [a] study", "Johnson exam"],
    ),
    ("one day range", Level.STUDY, {"StudyDate": "20200115-20200115"}, ["MR Knee", "CT HEAD"]),
    ("date equal", Level.STUDY, {"StudyDate": "20200115"}, ["MR Knee", "CT HEAD"]),
    ("date list", Level.STUDY, {"StudyDate": "20200101\\20220101"}, ["CT Head", "Johnson exam"]),
    ("empty range", Level.STUDY, {"StudyDate": "20300101-"}, []),
    # patient tags at study level, PN on a study tag
    (
        "patient tag on study",
        Level.STUDY,
        {"PatientName": "doe*"},
        ["CT Head", "ct head", "MR Knee"],
    ),
    (
        "referring with accents",
        Level.STUDY,
        {"ReferringPhysicianName": "dupont^eric"},
        ["CT Head", "MR Knee"],
    ),
    (
        "patient and date",
        Level.STUDY,
        {"PatientName": "doe*", "StudyDate": "20200110-"},
        ["ct head", "MR Knee"],
    ),
    (
        "id and description",
        Level.STUDY,
        {"PatientID": "DOE1", "StudyDescription": "*head"},
        ["CT Head", "ct head"],
    ),
    # joins to ancestors
    (
        "modality any case",
        Level.SERIES,
        {"Modality": "mr"},
        ["CT Head/MR", "MR Knee/MR", "Bracket [a] study/MR"],
    ),
    (
        "modality",
        Level.SERIES,
        {"Modality": "MR"},
        ["CT Head/MR", "MR Knee/MR", "Bracket [a] study/MR"],
    ),
    (
        "modality list",
        Level.SERIES,
        {"Modality": "US\\MR", "PatientID": "DOE*"},
        ["CT Head/MR", "MR Knee/MR"],
    ),
    (
        "series by patient",
        Level.SERIES,
        {"PatientName": "*JOHN"},
        ["CT Head/CT", "CT Head/MR", "ct head/CT"],
    ),
    (
        "series by study",
        Level.SERIES,
        {"StudyDate": "20200101-20200131", "Modality": "CT"},
        ["CT Head/CT", "ct head/CT"],
    ),
    (
        "instances three levels",
        Level.INSTANCE,
        {"PatientName": "*ller*", "StudyDate": "20200101-", "Modality": "US"},
        ["Chest 50% dose/US/1"],
    ),
    (
        "instance number",
        Level.INSTANCE,
        {"PatientID": "DOE?", "InstanceNumber": "2"},
        ["CT Head/CT/2", "MR Knee/MR/2"],
    ),
    (
        "study uid on instances",
        Level.INSTANCE,
        {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.2.1"},
        ["MR Knee/MR/1", "MR Knee/MR/2"],
    ),
]


#: Case-sensitive searches (C-FIND for other tags than PN, ``CaseSensitive`` true).
SENSITIVE_CASES: list[tuple[str, Level, dict[str, str], list[str]]] = [
    ("pn same case", Level.PATIENT, {"PatientName": "Doe*"}, ["DOE1"]),
    ("pn other case", Level.PATIENT, {"PatientName": "doe*"}, []),
    ("pn same accents", Level.PATIENT, {"PatientName": "Müller^Jürgen"}, ["MUE1"]),
    ("pn accents required", Level.PATIENT, {"PatientName": "Muller^Jurgen"}, []),
    ("pn list", Level.PATIENT, {"PatientName": "Doe^John\\SMITH^ANN"}, ["DOE1"]),
    ("pn list accents", Level.PATIENT, {"PatientName": "doe^john\\Müller^Jürgen"}, ["MUE1"]),
    ("accented prefix", Level.PATIENT, {"PatientName": "Mü*"}, ["MUE1"]),
    ("prefix accents required", Level.PATIENT, {"PatientName": "Mu*"}, []),
    ("prefix case required", Level.PATIENT, {"PatientName": "SMITH*"}, []),
    ("id other case", Level.PATIENT, {"PatientID": "doe1"}, []),
    ("percent prefix", Level.PATIENT, {"PatientID": "A%*"}, ["A%1"]),
    ("bracket", Level.PATIENT, {"PatientID": "*[1]"}, ["BR[1]"]),
    ("study case", Level.STUDY, {"StudyDescription": "CT*"}, ["CT Head", "CT HEAD"]),
    ("study lower", Level.STUDY, {"StudyDescription": "ct*"}, ["ct head"]),
    ("lone underscore", Level.STUDY, {"StudyDescription": "*_*"}, ["Under_line"]),
    (
        "id and description",
        Level.STUDY,
        {"PatientID": "DOE1", "StudyDescription": "*head"},
        ["ct head"],
    ),
    ("referring", Level.STUDY, {"ReferringPhysicianName": "DUPONT^ERIC"}, ["MR Knee"]),
    ("modality case", Level.SERIES, {"Modality": "mr"}, []),
    (
        "modality",
        Level.SERIES,
        {"Modality": "MR", "PatientName": "D*"},
        [
            "CT Head/MR",
            "MR Knee/MR",
        ],
    ),
    (
        "date range",
        Level.INSTANCE,
        {"StudyDate": "20200115-20200131", "Modality": "MR"},
        [
            "MR Knee/MR/1",
            "MR Knee/MR/2",
        ],
    ),
]


@pytest.mark.parametrize(
    ("level", "query", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_find(loaded: Loaded, level: Level, query: dict[str, str], expected: list[str]) -> None:
    constraints = _constraints(query)
    found = _find(loaded, level, constraints)
    assert _labels(loaded, level, found) == expected
    assert found == _oracle(loaded, level, constraints)


@pytest.mark.parametrize(
    ("level", "query", "expected"),
    [c[1:] for c in SENSITIVE_CASES],
    ids=[c[0] for c in SENSITIVE_CASES],
)
def test_find_case_sensitive(
    loaded: Loaded, level: Level, query: dict[str, str], expected: list[str]
) -> None:
    constraints = _constraints(query, case_sensitive=True)
    found = _find(loaded, level, constraints)
    assert _labels(loaded, level, found) == expected
    assert found == _oracle(loaded, level, constraints)


def test_find_wildcard_on_an_instance_uid(loaded: Loaded) -> None:
    # The REST API refuses wildcards on UIDs, but the index answers any constraint it is given.
    prefix = Constraint(
        0x00080018, ConstraintKind.WILDCARD, ("1.2.826.0.1.3680043.8.498.1.1.*",), True
    )
    found = _find(loaded, Level.INSTANCE, [prefix])
    assert _labels(loaded, Level.INSTANCE, found) == [
        "CT Head/CT/1",
        "CT Head/CT/2",
        "CT Head/MR/1",
    ]
    assert found == _oracle(loaded, Level.INSTANCE, [prefix])


def test_find_without_constraints_lists_the_level(loaded: Loaded) -> None:
    for level in Level:
        every = _find_in_orthanc_order(loaded, level, [])
        assert sorted(every) == sorted(loaded.public_ids(level))
        assert _find_in_orthanc_order(loaded, level, [], since=1, limit=2) == every[1:3]
        assert _find_in_orthanc_order(loaded, level, [], since=3) == every[3:]


def test_find_with_since_and_limit(loaded: Loaded) -> None:
    # Pages are cut in Orthanc's order (by public id for studies).
    every = _constraints({"StudyDate": "19000101-"})
    ordered = _find_in_orthanc_order(loaded, Level.STUDY, every)
    assert _labels(loaded, Level.STUDY, _find(loaded, Level.STUDY, every)) == ALL_STUDIES
    assert _find_in_orthanc_order(loaded, Level.STUDY, every, limit=3) == ordered[:3]
    assert _find_in_orthanc_order(loaded, Level.STUDY, every, since=2, limit=3) == ordered[2:5]
    assert _find_in_orthanc_order(loaded, Level.STUDY, every, since=5) == ordered[5:]
    assert _find(loaded, Level.STUDY, every, since=50) == []
    assert _find(loaded, Level.STUDY, every, limit=0) == []
    constrained = _constraints({"PatientName": "doe*"})
    doe = _find_in_orthanc_order(loaded, Level.STUDY, constrained)
    assert _labels(loaded, Level.STUDY, sorted(doe, key=loaded.public_ids(Level.STUDY).index)) == [
        "CT Head",
        "ct head",
        "MR Knee",
    ]
    assert _find_in_orthanc_order(loaded, Level.STUDY, constrained, since=1) == doe[1:]


def test_find_skips_resources_without_the_tag(loaded: Loaded) -> None:
    # ReferringPhysicianName is absent from most studies: a range or a wildcard never matches
    # an absent tag.
    constraints = _constraints({"ReferringPhysicianName": "D*"})
    assert _labels(loaded, Level.STUDY, _find(loaded, Level.STUDY, constraints)) == [
        "CT Head",
        "MR Knee",
    ]


def test_find_after_delete_forgets_the_tags(loaded: Loaded) -> None:
    study = loaded.internal_id(Level.STUDY, loaded.samples[4].public_id(Level.STUDY))
    with loaded.index.write() as writer:
        writer.delete_resource(study, now="20240101T000000")
    constraints = _constraints({"PatientName": "doe*"})
    assert _labels(loaded, Level.STUDY, _find(loaded, Level.STUDY, constraints)) == [
        "CT Head",
        "ct head",
    ]
    assert _labels(loaded, Level.PATIENT, _find(loaded, Level.PATIENT, constraints)) == ["DOE1"]


@pytest.mark.parametrize(
    "query",
    [
        {"PatientName": "Müller^Jürgen"},
        {"PatientName": "Doe^John\\SMITH^ANN"},
        {"PatientName": "Mü*"},
        {"StudyDate": "20200115-20200131"},
    ],
    ids=["equal", "list", "prefix", "range"],
)
def test_case_sensitive_constraints_seek_the_value_index(
    loaded: Loaded, query: dict[str, str]
) -> None:
    """A case-sensitive constraint seeks ``(tag, level, value)``, never scans the table."""
    index = loaded.index
    if not isinstance(index, SqliteIndex):
        pytest.skip("query plans are checked on SQLite")
    sql, params = index._find_sql(
        Level.STUDY, _constraints(query, case_sensitive=True), since=0, limit=None
    )
    plan = " | ".join(row[3] for row in index._query("EXPLAIN QUERY PLAN " + sql, params))
    assert "USING COVERING INDEX tag_values_by_value (tag=? AND level=? AND value" in plan
    assert "SCAN tag_values" not in plan
