"""DICOM jobs resume from their snapshot: a rebuilt store job sends only what was not sent."""

from __future__ import annotations

from pathlib import Path

from obelisk.core.levels import Level
from obelisk.jobs.model import StepOutcome
from obelisk.services.dicom_jobs import StoreScuJob
from obelisk.services.ingest import Origin
from tests.conftest import make_services
from tests.dicom_factory import make_dicom
from tests.unit.dicom.test_modality_routes import FakeClient


class Context:
    output_dir = Path("/nonexistent")

    def log(self, message: str) -> None:
        return None


def test_store_job_resumes_after_its_last_sent_instance() -> None:
    services = make_services(DicomModalities={"pacs": ["PACS", "127.0.0.1", 104]})
    try:
        for number in (1, 2, 3):
            data = make_dicom(sop_uid=f"1.2.3.4.{number}", instance_number=number)
            services.ingest.store(data, Origin())
        study = services.index.list_public_ids(Level.STUDY, since=0, limit=None)
        assert services.network is not None
        fake = FakeClient()
        services.network.client = fake
        job = services.network.store_job("pacs", {"Resources": study})
        snapshot = job.serialize()
        snapshot["Position"] = 2  # as if the server stopped after two instances
        rebuilt = StoreScuJob(lambda: fake, services.resources.dicom_bytes, snapshot)
        assert rebuilt.step(Context()).outcome is StepOutcome.SUCCESS
        assert len(fake.sent) == 1
        assert rebuilt.content()["InstancesCount"] == 3
        assert rebuilt.progress() == 1.0
    finally:
        services.close()
