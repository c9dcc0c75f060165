from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.server_process import ObeliskProcess


@pytest.fixture
def obelisk_factory(tmp_path: Path) -> Iterator[Callable[..., ObeliskProcess]]:
    started: list[ObeliskProcess] = []

    def factory(config: dict[str, Any] | None = None, name: str = "server") -> ObeliskProcess:
        workdir = tmp_path / name
        workdir.mkdir(exist_ok=True)
        process = ObeliskProcess(workdir, config)
        started.append(process)
        return process

    yield factory
    for process in started:
        process.stop()


@pytest.fixture
def obelisk(obelisk_factory: Callable[..., ObeliskProcess]) -> Iterator[ObeliskProcess]:
    with obelisk_factory() as server:
        yield server
