"""Modification jobs stepped by hand: where a crash can happen, the saved snapshot is safe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from obelisk.core.levels import Level
from obelisk.jobs.model import StepOutcome
from obelisk.services import modification_jobs
from obelisk.services.context import Services
from obelisk.services.modification_jobs import (
    ModificationService,
    OriginInfo,
    ResourceModificationJob,
)

STUDY = "64a773d7-f879e338-2af4417d-1d10b99c-69c0fb8a"
Loaded = tuple[Services, TestClient]


class _Context:
    def __init__(self, path: Path) -> None:
        self.output_dir = path

    def log(self, message: str) -> None:
        return None


def _saved(job: ResourceModificationJob) -> dict[str, Any]:
    """What the engine would have persisted (a copy, as JSON)."""
    snapshot: dict[str, Any] = json.loads(json.dumps(job.serialize()))
    return snapshot


@pytest.mark.parametrize("step_seconds", [0.0, 60.0])  # one instance per step, or all at once
def test_sources_are_deleted_only_after_every_copy_is_saved(
    loaded: Loaded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step_seconds: float
) -> None:
    services, client = loaded
    monkeypatch.setattr(modification_jobs, "STEP_SECONDS", step_seconds)
    sources = {i["ID"] for i in client.get(f"/studies/{STUDY}/instances").json()}
    job = ModificationService(services).modification_job(
        Level.STUDY,
        STUDY,
        {"Replace": {"StudyDescription": "MOVED"}, "KeepSource": False},
        anonymize=False,
        origin=OriginInfo(),
    )
    context = _Context(tmp_path)
    cleaning: list[dict[str, Any]] = []
    while True:
        before = _saved(job)
        present = {s for s in sources if services.index.lookup(s, Level.INSTANCE)}
        result = job.step(context)
        assert result.outcome in (StepOutcome.CONTINUE, StepOutcome.SUCCESS)
        if present - {s for s in sources if services.index.lookup(s, Level.INSTANCE)}:
            # a source went during this step: the snapshot it started from has every copy
            assert before["Position"] == len(sources)
            cleaning.append(before)
        if result.outcome is StepOutcome.SUCCESS:
            break
    assert cleaning and not any(services.index.lookup(s, Level.INSTANCE) for s in sources)

    # A crash in the middle of the clean-up: the job rebuilt from the last snapshot finishes.
    resumed = ResourceModificationJob(services, cleaning[0])
    while (outcome := resumed.step(context).outcome) is StepOutcome.CONTINUE:
        pass
    assert outcome is StepOutcome.SUCCESS
    content = resumed.content()
    assert content["FailedInstancesCount"] == 0
    new_study = client.get(f"/studies/{content['ID']}").json()
    assert new_study["MainDicomTags"]["StudyDescription"] == "MOVED"
    assert len(client.get(f"/studies/{content['ID']}/instances").json()) == len(sources)
