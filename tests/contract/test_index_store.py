"""Storing instances, reading resources back, and the small tables around them."""

from __future__ import annotations

import dataclasses

from obelisk.core.changes import ChangeType, MetadataType
from obelisk.core.levels import Level
from obelisk.core.matching import parse_constraint
from obelisk.index.base import Attachment, ExportedResource, Index

from .conftest import NOW, Loaded, store_all
from .dicom_files import SampleInstance, attachment_for


def _changes(index: Index) -> list[tuple[ChangeType, Level, str]]:
    changes, _ = index.changes(0, 1000)
    return [(c.change_type, c.level, c.public_id) for c in changes]


def test_first_instance_creates_its_ancestors(index: Index, samples: list[SampleInstance]) -> None:
    first = samples[0]
    with index.write() as writer:
        outcome = writer.store_instance(first.new, overwrite=False, now=NOW)
    assert not outcome.already_stored
    assert outcome.created == (Level.PATIENT, Level.STUDY, Level.SERIES)
    assert outcome.replaced_uuids == ()
    assert _changes(index) == [
        (ChangeType.NewInstance, Level.INSTANCE, first.public_id(Level.INSTANCE)),
        (ChangeType.NewSeries, Level.SERIES, first.public_id(Level.SERIES)),
        (ChangeType.NewStudy, Level.STUDY, first.public_id(Level.STUDY)),
        (ChangeType.NewPatient, Level.PATIENT, first.public_id(Level.PATIENT)),
    ]
    instance = index.lookup(first.public_id(Level.INSTANCE))
    assert instance is not None
    assert instance.internal_id == outcome.instance_internal_id
    assert instance.level is Level.INSTANCE


def test_second_instance_of_a_series_creates_nothing_else(
    index: Index, samples: list[SampleInstance]
) -> None:
    first, second = samples[0], samples[1]
    assert first.public_id(Level.SERIES) == second.public_id(Level.SERIES)
    store_all(index, [first])
    with index.write() as writer:
        outcome = writer.store_instance(second.new, overwrite=False, now=NOW)
    assert outcome.created == ()
    assert _changes(index)[-1] == (
        ChangeType.NewInstance,
        Level.INSTANCE,
        second.public_id(Level.INSTANCE),
    )
    # A new series in an existing study creates the series only.
    third = samples[2]
    assert third.public_id(Level.STUDY) == first.public_id(Level.STUDY)
    with index.write() as writer:
        outcome = writer.store_instance(third.new, overwrite=False, now=NOW)
    assert outcome.created == (Level.SERIES,)
    assert [c[0] for c in _changes(index)[-2:]] == [ChangeType.NewInstance, ChangeType.NewSeries]


def test_store_keeps_the_whole_tree(loaded: Loaded) -> None:
    totals = loaded.index.totals()
    assert (totals.patients, totals.studies, totals.series, totals.instances) == (7, 8, 10, 12)
    assert totals.uncompressed_size == sum(len(s.data) for s in loaded.samples)
    assert totals.compressed_size == totals.uncompressed_size
    assert [o.instance_internal_id for o in loaded.outcomes] == sorted(
        o.instance_internal_id for o in loaded.outcomes
    )


def test_already_stored_instance_is_left_alone(loaded: Loaded) -> None:
    sample = loaded.samples[0]
    before = _changes(loaded.index)
    with loaded.index.write() as writer:
        outcome = writer.store_instance(sample.new, overwrite=False, now=NOW)
    assert outcome.already_stored
    assert outcome.instance_internal_id == loaded.outcomes[0].instance_internal_id
    assert outcome.created == ()
    assert outcome.replaced_uuids == ()
    assert _changes(loaded.index) == before
    assert loaded.index.attachments(outcome.instance_internal_id)[0].uuid == (
        sample.new.attachments[0].uuid
    )


def test_overwrite_replaces_the_instance_and_reports_old_files(loaded: Loaded) -> None:
    sample = loaded.samples[0]
    old_uuid = sample.new.attachments[0].uuid
    new_attachment = attachment_for(sample.data, "0000aaaa-bbbb-cccc-dddd-eeeeffff0000")
    replacement = dataclasses.replace(
        sample.new, attachments=[new_attachment], metadata={int(MetadataType.Origin): "Plugins"}
    )
    with loaded.index.write() as writer:
        outcome = writer.store_instance(replacement, overwrite=True, now=NOW)
    assert not outcome.already_stored
    assert outcome.replaced_uuids == (old_uuid,)
    assert outcome.created == ()
    instance = loaded.index.lookup(sample.public_id(Level.INSTANCE), Level.INSTANCE)
    assert instance is not None
    assert instance.internal_id == outcome.instance_internal_id
    assert instance.parent_public_id == sample.public_id(Level.SERIES)
    assert [a.uuid for a in loaded.index.attachments(instance.internal_id)] == [new_attachment.uuid]
    assert loaded.index.metadata(instance.internal_id) == {int(MetadataType.Origin): "Plugins"}
    assert loaded.index.totals().instances == 12
    assert old_uuid not in set(loaded.index.all_attachment_uuids())
    assert _changes(loaded.index)[-1] == (
        ChangeType.NewInstance,
        Level.INSTANCE,
        sample.public_id(Level.INSTANCE),
    )


def test_lookup_returns_resources_with_parents_children_and_tags(loaded: Loaded) -> None:
    sample = loaded.samples[0]
    patient = loaded.index.lookup(sample.public_id(Level.PATIENT))
    study = loaded.index.lookup(sample.public_id(Level.STUDY))
    series = loaded.index.lookup(sample.public_id(Level.SERIES))
    instance = loaded.index.lookup(sample.public_id(Level.INSTANCE))
    assert patient is not None and study is not None and series is not None
    assert instance is not None
    assert patient.parent_internal_id is None and patient.parent_public_id is None
    assert patient.children == [sample.public_id(Level.STUDY), loaded.samples[3].public_id(1)]
    assert study.parent_public_id == patient.public_id
    assert study.parent_internal_id == patient.internal_id
    assert study.children == [series.public_id, loaded.samples[2].public_id(Level.SERIES)]
    assert series.children == [instance.public_id, loaded.samples[1].public_id(Level.INSTANCE)]
    assert instance.children == []
    assert patient.main_tags == sample.parsed.main_tags[Level.PATIENT]
    assert study.main_tags == sample.parsed.main_tags[Level.STUDY]
    assert study.patient_tags == sample.parsed.main_tags[Level.PATIENT]
    assert patient.patient_tags is None and series.patient_tags is None
    assert series.main_tags["Modality"] == "CT"
    assert instance.main_tags["SOPInstanceUID"] == sample.spec.sop_uid
    assert not series.is_stable and instance.is_stable
    assert instance.last_update == NOW
    assert not patient.protected


def test_lookup_with_a_level(loaded: Loaded) -> None:
    study_id = loaded.samples[0].public_id(Level.STUDY)
    found = loaded.index.lookup(study_id, Level.STUDY)
    assert found is not None and found.level is Level.STUDY
    assert loaded.index.lookup(study_id, Level.SERIES) is None
    assert loaded.index.lookup("00000000-00000000-00000000-00000000-00000000") is None


def test_get_by_internal_ids_keeps_the_order_asked(loaded: Loaded) -> None:
    series_ids = loaded.index.list_internal_ids(Level.SERIES)
    asked = [series_ids[3], series_ids[0], 999_999, series_ids[1]]
    found = loaded.index.get_by_internal_ids(asked, children=True)
    assert [r.internal_id for r in found] == [series_ids[3], series_ids[0], series_ids[1]]
    first_series = found[1]
    assert first_series.children == [
        loaded.samples[0].public_id(Level.INSTANCE),
        loaded.samples[1].public_id(Level.INSTANCE),
    ]
    without = loaded.index.get_by_internal_ids(asked, children=False)
    assert [r.children for r in without] == [[], [], []]
    assert loaded.index.get_by_internal_ids([], children=True) == []


def test_get_by_internal_ids_handles_many_ids(loaded: Loaded) -> None:
    existing = {i for level in Level for i in loaded.index.list_internal_ids(level)}
    asked = list(range(max(existing) + 1300, 0, -1))  # more than one chunk of 500
    found = loaded.index.get_by_internal_ids(asked, children=True)
    assert [r.internal_id for r in found] == sorted(existing, reverse=True)


def test_list_ids_with_since_and_limit(loaded: Loaded) -> None:
    studies = loaded.public_ids(Level.STUDY)
    assert loaded.index.list_public_ids(Level.STUDY) == studies
    assert loaded.index.list_public_ids(Level.STUDY, since=2) == studies[2:]
    assert loaded.index.list_public_ids(Level.STUDY, limit=3) == studies[:3]
    assert loaded.index.list_public_ids(Level.STUDY, since=2, limit=3) == studies[2:5]
    assert loaded.index.list_public_ids(Level.STUDY, since=100) == []
    internal = loaded.index.list_internal_ids(Level.INSTANCE, since=10, limit=10)
    assert internal == [o.instance_internal_id for o in loaded.outcomes][10:]
    assert loaded.index.list_public_ids(Level.PATIENT) == loaded.public_ids(Level.PATIENT)


def test_children_public_ids(loaded: Loaded) -> None:
    patient = loaded.internal_id(Level.PATIENT, loaded.samples[0].public_id(Level.PATIENT))
    assert loaded.index.children_public_ids(patient) == [
        loaded.samples[0].public_id(Level.STUDY),
        loaded.samples[3].public_id(Level.STUDY),
    ]


def test_child_counts_agree_with_the_resources(loaded: Loaded) -> None:
    studies = loaded.index.list_internal_ids(Level.STUDY)
    series = loaded.index.get_by_internal_ids(
        loaded.index.list_internal_ids(Level.SERIES), children=True
    )
    expected = [
        (s.parent_internal_id, s.main_tags, len(s.children))
        for s in series
        if s.parent_internal_id in studies[:2]
    ]
    found = loaded.index.child_counts(studies[:2])
    assert [(c.parent_internal_id, c.main_tags, c.children) for c in found] == expected
    assert len(found) >= 2
    assert loaded.index.child_counts([]) == []


def test_instance_files_in_tree_order(index: Index, samples: list[SampleInstance]) -> None:
    # Instances of two series stored interleaved still come out series by series.
    first_series = [s for s in samples if s.public_id(Level.SERIES) == samples[0].public_id(2)]
    other = samples[2]
    store_all(index, [first_series[0], other, first_series[1]])
    study = index.lookup(samples[0].public_id(Level.STUDY))
    assert study is not None
    files = index.instance_files(study.internal_id)
    assert [f.public_id for f in files] == [
        first_series[0].public_id(Level.INSTANCE),
        first_series[1].public_id(Level.INSTANCE),
        other.public_id(Level.INSTANCE),
    ]
    assert files[0].attachment == first_series[0].new.attachments[0]
    one = index.lookup(other.public_id(Level.INSTANCE))
    assert one is not None
    assert [f.internal_id for f in index.instance_files(one.internal_id)] == [one.internal_id]
    assert index.instance_files(study.internal_id, content_type=2) == []


def test_lookup_identifier(loaded: Loaded) -> None:
    sample = loaded.samples[0]
    by_patient_id = loaded.index.lookup_identifier("DOE1")
    assert [(r.level, r.public_id) for r in by_patient_id] == [
        (Level.PATIENT, sample.public_id(Level.PATIENT))
    ]
    for level, uid in (
        (Level.STUDY, sample.spec.study_uid),
        (Level.SERIES, sample.spec.series_uid),
        (Level.INSTANCE, sample.spec.sop_uid),
    ):
        found = loaded.index.lookup_identifier(uid)
        assert [(r.level, r.public_id) for r in found] == [(level, sample.public_id(level))]
    assert loaded.index.lookup_identifier("doe1") == []
    assert loaded.index.lookup_identifier("Doe^John") == []


def test_metadata_set_update_delete(loaded: Loaded) -> None:
    instance = loaded.outcomes[0].instance_internal_id
    stored = loaded.index.metadata(instance)
    assert stored[int(MetadataType.TransferSyntax)] == "1.2.840.10008.1.2.1"
    assert stored[int(MetadataType.IndexInSeries)] == "1"
    with loaded.index.write() as writer:
        writer.set_metadata(instance, 1024, "first")
        writer.set_metadata(instance, 1024, "second")
        writer.set_metadata(instance, 1025, "other")
    assert loaded.index.metadata(instance)[1024] == "second"
    assert list(loaded.index.metadata(instance)) == sorted(loaded.index.metadata(instance))
    with loaded.index.write() as writer:
        assert writer.delete_metadata(instance, 1024)
        assert not writer.delete_metadata(instance, 1024)
    assert 1024 not in loaded.index.metadata(instance)
    assert loaded.index.metadata(instance)[1025] == "other"


def test_attachments_set_replace_delete_with_revision(loaded: Loaded) -> None:
    study = loaded.internal_id(Level.STUDY, loaded.samples[0].public_id(Level.STUDY))
    first = attachment_for(b"hello", "00000000-0000-0000-0000-000000000001", content_type=1024)
    second = attachment_for(b"world!", "00000000-0000-0000-0000-000000000002", content_type=1024)
    with loaded.index.write() as writer:
        assert writer.set_attachment(study, first) is None
    assert loaded.index.attachments(study) == [first]
    with loaded.index.write() as writer:
        replaced = writer.set_attachment(study, second)
    assert replaced == first
    assert loaded.index.attachments(study) == [dataclasses.replace(second, revision=2)]
    with loaded.index.write() as writer:
        assert writer.delete_attachment(study, 1024) == dataclasses.replace(second, revision=2)
        assert writer.delete_attachment(study, 1024) is None
    assert loaded.index.attachments(study) == []


def test_attachments_and_metadata_of_many(loaded: Loaded) -> None:
    instances = [o.instance_internal_id for o in loaded.outcomes]
    asked = instances + list(range(100_000, 101_200))  # more than one chunk of 500
    attachments = loaded.index.attachments_of_many(asked, 1)
    assert attachments == {
        o.instance_internal_id: s.new.attachments[0]
        for o, s in zip(loaded.outcomes, loaded.samples, strict=True)
    }
    assert loaded.index.attachments_of_many(asked, 2) == {}
    numbers = loaded.index.metadata_of_many(asked, int(MetadataType.IndexInSeries))
    assert numbers == {
        o.instance_internal_id: str(s.spec.instance_number)
        for o, s in zip(loaded.outcomes, loaded.samples, strict=True)
    }
    assert loaded.index.metadata_of_many([], 1) == {}


def test_changes_since_limit_and_clear(loaded: Loaded) -> None:
    everything, last = loaded.index.changes(0, 1000)
    assert len(everything) == 12 + 10 + 8 + 7
    assert last == everything[-1].seq
    assert [c.seq for c in everything] == sorted(c.seq for c in everything)
    page, page_last = loaded.index.changes(everything[4].seq, 3)
    assert page == everything[5:8]
    assert page_last == last
    assert loaded.index.last_change() == everything[-1]
    assert everything[0].date == NOW
    with loaded.index.write() as writer:
        writer.log_change(ChangeType.UpdatedMetadata, Level.STUDY, "x", "20240202T000000")
    assert loaded.index.last_change() is not None
    newest = loaded.index.last_change()
    assert newest is not None and newest.change_type is ChangeType.UpdatedMetadata
    assert newest.seq > last
    with loaded.index.write() as writer:
        writer.clear_changes()
    assert loaded.index.changes(0, 10)[0] == []
    assert loaded.index.last_change() is None


def test_exports_log(index: Index) -> None:
    assert index.exports(0, 10) == ([], 0)
    for number in range(5):
        with index.write() as writer:
            writer.log_export(
                ExportedResource(
                    seq=0,
                    level=Level.SERIES,
                    public_id=f"series-{number}",
                    remote_modality="PACS",
                    patient_id="DOE1",
                    study_uid="1.2",
                    series_uid=f"1.2.{number}",
                    sop_instance_uid="",
                    date=NOW,
                )
            )
    exported, last = index.exports(0, 10)
    assert [e.public_id for e in exported] == [f"series-{n}" for n in range(5)]
    assert exported[0].level is Level.SERIES and exported[0].remote_modality == "PACS"
    assert last == exported[-1].seq
    page, _ = index.exports(exported[1].seq, 2)
    assert [e.public_id for e in page] == ["series-2", "series-3"]
    with index.write() as writer:
        writer.clear_exports()
    assert index.exports(0, 10)[0] == []


def test_totals_of_an_empty_index(index: Index) -> None:
    totals = index.totals()
    assert (totals.patients, totals.studies, totals.series, totals.instances) == (0, 0, 0, 0)
    assert (totals.compressed_size, totals.uncompressed_size) == (0, 0)


def test_subtree_totals(loaded: Loaded) -> None:
    sample = loaded.samples[0]
    patient = loaded.internal_id(Level.PATIENT, sample.public_id(Level.PATIENT))
    counts, compressed, uncompressed = loaded.index.subtree_totals(patient)
    assert counts == {Level.PATIENT: 1, Level.STUDY: 2, Level.SERIES: 3, Level.INSTANCE: 4}
    expected = sum(len(s.data) for s in loaded.samples if s.spec.patient_id == "DOE1")
    assert (compressed, uncompressed) == (expected, expected)
    series = loaded.internal_id(Level.SERIES, sample.public_id(Level.SERIES))
    counts, _, size = loaded.index.subtree_totals(series)
    assert counts == {Level.SERIES: 1, Level.INSTANCE: 2}
    assert size == len(loaded.samples[0].data) + len(loaded.samples[1].data)


def test_protection_and_recycling_order(loaded: Loaded) -> None:
    patients = loaded.public_ids(Level.PATIENT)
    oldest = loaded.index.oldest_unprotected_patient()
    assert oldest is not None and oldest.public_id == patients[0]
    with loaded.index.write() as writer:
        writer.set_protected(loaded.internal_id(Level.PATIENT, patients[0]), True)
    protected = loaded.index.lookup(patients[0])
    assert protected is not None and protected.protected
    oldest = loaded.index.oldest_unprotected_patient()
    assert oldest is not None and oldest.public_id == patients[1]
    oldest = loaded.index.oldest_unprotected_patient(exclude=patients[1])
    assert oldest is not None and oldest.public_id == patients[2]


def test_global_properties(index: Index) -> None:
    assert index.get_global("DatabaseSeq") is None
    with index.write() as writer:
        writer.set_global("DatabaseSeq", "1")
        writer.set_global("Other", "x")
    with index.write() as writer:
        writer.set_global("DatabaseSeq", "2")
    assert index.get_global("DatabaseSeq") == "2"
    assert index.get_global("Other") == "x"


def test_failed_transaction_leaves_nothing(index: Index, samples: list[SampleInstance]) -> None:
    class Boom(Exception):
        pass

    try:
        with index.write() as writer:
            writer.store_instance(samples[0].new, overwrite=False, now=NOW)
            raise Boom
    except Boom:
        pass
    assert index.totals().instances == 0
    assert index.changes(0, 10)[0] == []
    store_all(index, samples[:1])
    assert index.totals().instances == 1


def test_reads_during_a_write_transaction_see_the_last_commit(
    index: Index, samples: list[SampleInstance]
) -> None:
    store_all(index, samples[:1])
    with index.write() as writer:
        writer.store_instance(samples[1].new, overwrite=False, now=NOW)
        writer.set_global("key", "value")
        # Reading through the index while a write transaction is open must not fail.
        assert index.lookup(samples[0].public_id(Level.INSTANCE)) is not None
        index.get_global("key")
        index.totals()
    assert index.totals().instances == 2


def test_attachment_records_keep_every_field(index: Index, samples: list[SampleInstance]) -> None:
    compressed = Attachment(
        content_type=1,
        uuid="11111111-2222-3333-4444-555555555555",
        uncompressed_size=5_000_000_000,
        uncompressed_md5="0" * 32,
        compressed_size=1234,
        compressed_md5="f" * 32,
        compression=1,
    )
    with index.write() as writer:
        outcome = writer.store_instance(
            dataclasses.replace(samples[0].new, attachments=[compressed]), overwrite=False, now=NOW
        )
    assert index.attachments(outcome.instance_internal_id) == [compressed]
    assert index.totals().uncompressed_size == 5_000_000_000


def test_one_transaction_mixing_stores_and_other_writes(
    index: Index, samples: list[SampleInstance]
) -> None:
    first, second, third = samples[0], samples[1], samples[8]
    replacement = dataclasses.replace(
        first.new, attachments=[attachment_for(first.data, "0000aaaa-0000-0000-0000-00000000000a")]
    )
    with index.write() as writer:
        stored = writer.store_instance(first.new, overwrite=False, now=NOW)
        writer.log_change(ChangeType.UpdatedMetadata, Level.INSTANCE, "between", NOW)
        writer.set_metadata(stored.instance_internal_id, 1024, "user")
        again = writer.store_instance(replacement, overwrite=True, now=NOW)
        other = writer.store_instance(second.new, overwrite=False, now=NOW)
        doomed = writer.store_instance(third.new, overwrite=False, now=NOW)
        writer.delete_resource(doomed.instance_internal_id, now=NOW)
    assert again.replaced_uuids == (first.new.attachments[0].uuid,)
    assert [a.uuid for a in index.attachments(again.instance_internal_id)] == [
        "0000aaaa-0000-0000-0000-00000000000a"
    ]
    assert 1024 not in index.metadata(again.instance_internal_id)  # it went with the old one
    assert index.metadata(other.instance_internal_id)[1] == "2"
    assert index.lookup(third.public_id(Level.PATIENT)) is None
    # The overwritten and the deleted resources lose their entries, as in Orthanc.
    assert [(c[0], c[2]) for c in _changes(index)] == [
        (ChangeType.NewSeries, first.public_id(Level.SERIES)),
        (ChangeType.NewStudy, first.public_id(Level.STUDY)),
        (ChangeType.NewPatient, first.public_id(Level.PATIENT)),
        (ChangeType.UpdatedMetadata, "between"),
        (ChangeType.NewInstance, first.public_id(Level.INSTANCE)),
        (ChangeType.NewInstance, second.public_id(Level.INSTANCE)),
    ]
    constraints = [parse_constraint(0x00100010, "percent*", case_sensitive=False)]
    assert index.find(Level.PATIENT, [c for c in constraints if c], since=0, limit=None) == []
    constraints = [parse_constraint(0x00100010, "doe*", case_sensitive=False)]
    assert len(index.find(Level.INSTANCE, [c for c in constraints if c], since=0, limit=None)) == 2


def test_ancestors_follow_every_store_of_a_transaction(
    index: Index, samples: list[SampleInstance]
) -> None:
    first, second, third = samples[0], samples[1], samples[2]  # same series, then same study
    with index.write() as writer:
        writer.store_instance(first.new, overwrite=False, now=NOW)
        writer.store_instance(second.new, overwrite=False, now="20240101T120001")
    for level in (Level.PATIENT, Level.STUDY, Level.SERIES):
        found = index.lookup(first.public_id(level))
        assert found is not None and found.last_update == "20240101T120001"

    with index.write() as writer:
        writer.mark_stable(10**12, NOW)  # everything stable…
        stored = writer.store_instance(third.new, overwrite=False, now=NOW)  # …but this study
        assert stored.created == (Level.SERIES,)
    study = index.lookup(first.public_id(Level.STUDY))
    assert study is not None and not study.is_stable

    with index.write() as writer:
        series = index.lookup(first.public_id(Level.SERIES))
        assert series is not None
        writer.delete_resource(series.internal_id, now=NOW)
        again = writer.store_instance(first.new, overwrite=False, now=NOW)
        assert again.created == (Level.SERIES,)
        writer.mark_stable(10**12, NOW)
        writer.store_instance(second.new, overwrite=False, now=NOW)
    series = index.lookup(first.public_id(Level.SERIES))
    assert series is not None and not series.is_stable
    assert series.children == [first.public_id(Level.INSTANCE), second.public_id(Level.INSTANCE)]


def test_replaced_main_tags_are_read_and_searched(loaded: Loaded) -> None:
    index, sample = loaded.index, loaded.samples[0]
    study = index.lookup(sample.public_id(Level.STUDY), Level.STUDY)
    assert study is not None and study.patient_tags is not None
    with index.write() as writer:
        writer.replace_main_tags(
            study.internal_id,
            Level.STUDY,
            {**study.main_tags, "StudyDescription": "RECONSTRUCTED"},
            {**study.patient_tags, "PatientName": "ZEBRA^ZOE"},
        )
    again = index.lookup(sample.public_id(Level.STUDY), Level.STUDY)
    assert again is not None
    assert again.main_tags["StudyDescription"] == "RECONSTRUCTED"
    assert again.patient_tags is not None and again.patient_tags["PatientName"] == "ZEBRA^ZOE"
    by_name = parse_constraint(0x00100010, "zebra*", case_sensitive=False)
    by_description = parse_constraint(0x00081030, "RECONSTRUCTED", case_sensitive=True)
    assert by_name is not None and by_description is not None
    found = index.find(Level.STUDY, [by_name, by_description], since=0, limit=None)
    assert found == [study.internal_id], "the new values are searchable"
