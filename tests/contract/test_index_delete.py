"""Deleting resources: the subtree goes, empty ancestors go, the nearest survivor is reported."""

from __future__ import annotations

from obelisk.core.changes import ChangeType
from obelisk.core.levels import Level
from obelisk.index.base import DeleteOutcome, Index

from .conftest import Loaded

LATER = "20240301T000000"


def _delete(loaded: Loaded, level: Level, sample: int) -> DeleteOutcome:
    internal_id = loaded.internal_id(level, loaded.samples[sample].public_id(level))
    with loaded.index.write() as writer:
        return writer.delete_resource(internal_id, now=LATER)


def _assert_changes_forgotten(index: Index, deleted: tuple[tuple[Level, str], ...]) -> None:
    """As Orthanc: no ``Deleted`` entry, and the entries of deleted resources are gone."""
    changes, last_seq = index.changes(0, 1000)
    assert all(c.change_type is not ChangeType.Deleted for c in changes)
    gone = {public_id for _, public_id in deleted}
    assert not gone & {c.public_id for c in changes}
    assert last_seq == index.last_change_seq() >= max([c.seq for c in changes], default=0)


def test_delete_one_of_two_instances_keeps_the_series(loaded: Loaded) -> None:
    sample = loaded.samples[0]
    outcome = _delete(loaded, Level.INSTANCE, 0)
    assert outcome.deleted == ((Level.INSTANCE, sample.public_id(Level.INSTANCE)),)
    assert outcome.remaining_ancestor == (Level.SERIES, sample.public_id(Level.SERIES))
    assert outcome.removed_uuids == (sample.new.attachments[0].uuid,)
    _assert_changes_forgotten(loaded.index, outcome.deleted)
    assert loaded.index.lookup(sample.public_id(Level.INSTANCE)) is None
    series = loaded.index.lookup(sample.public_id(Level.SERIES))
    assert series is not None
    assert series.children == [loaded.samples[1].public_id(Level.INSTANCE)]


def test_delete_the_last_instance_removes_the_empty_series(loaded: Loaded) -> None:
    sample = loaded.samples[2]  # the only instance of its series
    outcome = _delete(loaded, Level.INSTANCE, 2)
    assert outcome.deleted == (
        (Level.INSTANCE, sample.public_id(Level.INSTANCE)),
        (Level.SERIES, sample.public_id(Level.SERIES)),
    )
    assert outcome.remaining_ancestor == (Level.STUDY, sample.public_id(Level.STUDY))
    _assert_changes_forgotten(loaded.index, outcome.deleted)
    assert loaded.index.lookup(sample.public_id(Level.SERIES)) is None
    assert loaded.index.totals().series == 9


def test_delete_a_study_with_its_subtree(loaded: Loaded) -> None:
    first = loaded.samples[0]
    outcome = _delete(loaded, Level.STUDY, 0)
    below = {
        (level, s.public_id(level))
        for s in loaded.samples[:3]
        for level in (Level.STUDY, Level.SERIES, Level.INSTANCE)
    }
    assert set(outcome.deleted) == below
    assert outcome.deleted[0] == (Level.STUDY, first.public_id(Level.STUDY))
    assert outcome.remaining_ancestor == (Level.PATIENT, first.public_id(Level.PATIENT))
    assert sorted(outcome.removed_uuids) == sorted(
        s.new.attachments[0].uuid for s in loaded.samples[:3]
    )
    totals = loaded.index.totals()
    assert (totals.patients, totals.studies, totals.series, totals.instances) == (7, 7, 8, 9)
    assert totals.uncompressed_size == sum(len(s.data) for s in loaded.samples[3:])
    patient = loaded.index.lookup(first.public_id(Level.PATIENT))
    assert patient is not None
    assert patient.children == [loaded.samples[3].public_id(Level.STUDY)]
    removed = {o.instance_internal_id for o in loaded.outcomes[:3]}
    assert loaded.index.metadata_of_many(sorted(removed), 1) == {}
    assert loaded.index.attachments_of_many(sorted(removed), 1) == {}
    assert not removed & set(loaded.index.list_internal_ids(Level.INSTANCE))
    assert set(loaded.index.all_attachment_uuids()).isdisjoint(outcome.removed_uuids)


def test_delete_a_patient(loaded: Loaded) -> None:
    outcome = _delete(loaded, Level.PATIENT, 6)  # MUE1: one study, two series
    assert outcome.remaining_ancestor is None
    assert [level for level, _ in outcome.deleted] == [
        Level.PATIENT,
        Level.STUDY,
        Level.SERIES,
        Level.SERIES,
        Level.INSTANCE,
        Level.INSTANCE,
    ]
    assert len(outcome.removed_uuids) == 2
    assert loaded.index.lookup_identifier("MUE1") == []
    _assert_changes_forgotten(loaded.index, outcome.deleted)


def test_delete_the_only_instance_of_a_patient_removes_every_level(loaded: Loaded) -> None:
    sample = loaded.samples[10]  # AB1 has one instance
    outcome = _delete(loaded, Level.INSTANCE, 10)
    assert outcome.deleted == tuple((level, sample.public_id(level)) for level in reversed(Level))
    assert outcome.remaining_ancestor is None
    assert all(loaded.index.lookup(sample.public_id(level)) is None for level in Level)
    assert loaded.index.totals().patients == 6


def test_delete_everything(loaded: Loaded) -> None:
    for public_id in loaded.public_ids(Level.PATIENT):
        internal_id = loaded.internal_id(Level.PATIENT, public_id)
        with loaded.index.write() as writer:
            writer.delete_resource(internal_id, now=LATER)
    totals = loaded.index.totals()
    assert (totals.patients, totals.studies, totals.series, totals.instances) == (0, 0, 0, 0)
    assert list(loaded.index.all_attachment_uuids()) == []
    changes, last_seq = loaded.index.changes(0, 1000)
    assert changes == []
    assert last_seq >= 7 + 8 + 10 + 12  # the sequence goes on after the log empties
    # The same files can be stored again afterwards.
    with loaded.index.write() as writer:
        outcome = writer.store_instance(loaded.samples[0].new, overwrite=False, now=LATER)
    assert outcome.created == (Level.PATIENT, Level.STUDY, Level.SERIES)
