"""Fixtures of the DICOM client tests: services whose DICOM client is the module's ``fake``
fixture (each test module defines its own fake), and an HTTP client over them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from obelisk.http.app import create_app
from obelisk.services.context import Services
from tests.conftest import make_services


@pytest.fixture
def dicom_services(fake: Any) -> Iterator[Services]:
    services = make_services(DicomModalities={"pacs": ["PACS", "127.0.0.1", 11112]})
    assert services.network is not None
    services.network.client = fake
    services.start()
    yield services
    services.close()


@pytest.fixture
def api(dicom_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(dicom_services), client=("127.0.0.1", 50000)) as client:
        yield client
