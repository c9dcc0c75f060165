"""``mark_stable``: resources with no new instance for a while become stable, once."""

from __future__ import annotations

import time

from obelisk.core.changes import ChangeType
from obelisk.core.levels import Level
from obelisk.index.base import Index

from .conftest import NOW, store_all
from .dicom_files import SampleInstance

STABLE_AT = "20240101T120100"


def _stable_changes(index: Index) -> list[tuple[ChangeType, str]]:
    stable = {ChangeType.StableSeries, ChangeType.StableStudy, ChangeType.StablePatient}
    changes, _ = index.changes(0, 1000)
    return [(c.change_type, c.public_id) for c in changes if c.change_type in stable]


def _is_stable(index: Index, public_id: str) -> bool:
    found = index.lookup(public_id)
    assert found is not None
    return found.is_stable


def test_only_old_unstable_resources_become_stable(
    index: Index, samples: list[SampleInstance]
) -> None:
    old, recent = samples[0], samples[8]
    store_all(index, [old])
    time.sleep(0.02)
    threshold = time.time()
    time.sleep(0.02)
    store_all(index, [recent])

    with index.write() as writer:
        marked = writer.mark_stable(threshold, STABLE_AT)
    assert marked == [
        (Level.SERIES, old.public_id(Level.SERIES)),
        (Level.STUDY, old.public_id(Level.STUDY)),
        (Level.PATIENT, old.public_id(Level.PATIENT)),
    ]
    assert _stable_changes(index) == [
        (ChangeType.StableSeries, old.public_id(Level.SERIES)),
        (ChangeType.StableStudy, old.public_id(Level.STUDY)),
        (ChangeType.StablePatient, old.public_id(Level.PATIENT)),
    ]
    last = index.last_change()
    assert last is not None and last.date == STABLE_AT
    assert all(_is_stable(index, old.public_id(level)) for level in Level)
    assert not any(_is_stable(index, recent.public_id(level)) for level in Level if level != 3)

    with index.write() as writer:
        assert writer.mark_stable(threshold, STABLE_AT) == []
    assert len(_stable_changes(index)) == 3


def test_a_new_instance_makes_its_ancestors_unstable_again(
    index: Index, samples: list[SampleInstance]
) -> None:
    store_all(index, [samples[0]])
    with index.write() as writer:
        writer.mark_stable(time.time() + 1, STABLE_AT)
    assert _is_stable(index, samples[0].public_id(Level.SERIES))

    store_all(index, [samples[1]])  # same series
    for level in (Level.PATIENT, Level.STUDY, Level.SERIES):
        assert not _is_stable(index, samples[0].public_id(level))
        found = index.lookup(samples[0].public_id(level))
        assert found is not None and found.last_update == NOW
    with index.write() as writer:
        marked = writer.mark_stable(time.time() + 1, STABLE_AT)
    assert [level for level, _ in marked] == [Level.SERIES, Level.STUDY, Level.PATIENT]
    assert len(_stable_changes(index)) == 6


def test_unstable_resources_of_several_patients(
    index: Index, samples: list[SampleInstance]
) -> None:
    store_all(index, samples)
    with index.write() as writer:
        marked = writer.mark_stable(time.time() + 1, STABLE_AT)
    levels = [level for level, _ in marked]
    assert levels == [Level.SERIES] * 10 + [Level.STUDY] * 8 + [Level.PATIENT] * 7
    assert len(_stable_changes(index)) == 25
