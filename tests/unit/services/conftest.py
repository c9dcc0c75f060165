"""A started in-process server (jobs run) loaded with the recorded Orthanc inputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from obelisk.http.app import create_app
from obelisk.services.context import Services
from tests.conftest import make_services

INPUTS = Path(__file__).resolve().parents[2] / "fixtures" / "orthanc" / "inputs"


@pytest.fixture
def loaded() -> Iterator[tuple[Services, TestClient]]:
    services = make_services(Dictionary={"0011,1010": ["LO", "MyPrivate", 1, 1, "OBELISK TEST"]})
    services.start()
    with TestClient(
        create_app(services), client=("127.0.0.1", 50000), raise_server_exceptions=False
    ) as client:
        for path in sorted(INPUTS.glob("*.dcm")):
            assert client.post("/instances", content=path.read_bytes()).status_code == 200
        yield services, client
    services.close()
