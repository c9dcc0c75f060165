"""Shared fixtures: an in-process server over memory storage and an in-memory index."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from obelisk.config import load_settings
from obelisk.http.app import create_app
from obelisk.index.sqlite import SqliteIndex
from obelisk.services.context import Services, build_services
from obelisk.storage.memory import MemoryStorage


def make_services(**overrides: Any) -> Services:
    settings = load_settings(None, {"StableAge": 1, **overrides})
    return build_services(settings, SqliteIndex(":memory:"), MemoryStorage())


def client_for(**settings: Any) -> Iterator[TestClient]:
    """An HTTP client over fresh services with these settings, for a fixture to yield from."""
    services = make_services(**settings)
    with TestClient(
        create_app(services), client=("127.0.0.1", 50000), raise_server_exceptions=False
    ) as test_client:
        yield test_client
    services.close()


@pytest.fixture
def services() -> Iterator[Services]:
    svc = make_services()
    yield svc
    svc.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(
        create_app(services), client=("127.0.0.1", 50000), raise_server_exceptions=False
    ) as test_client:
        yield test_client
