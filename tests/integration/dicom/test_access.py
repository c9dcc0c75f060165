"""Who may associate and ask what: DicomAlwaysAllow*, DicomModalities' Allow*, host and called AET
checks, and modalities added at runtime over REST.

The strict server runs with pynetdicom only, the shared one with the direct path: the same rules
are checked on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.dicom.conftest import AET, dcmtk, start_server
from tests.integration.server_process import ObeliskProcess


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObeliskProcess]:
    process = start_server(
        tmp_path_factory.mktemp("strict"),
        {
            "DicomAlwaysAllowEcho": False,
            "DicomAlwaysAllowStore": False,
            "DicomCheckCalledAet": True,
            "DicomCheckModalityHost": True,
            # this server serves every association with pynetdicom: both paths are tested
            "Obelisk": {"DicomStoreFastPath": False},
            "DicomModalities": {
                "known": {"AET": "KNOWN", "Host": "127.0.0.1", "Port": 104, "AllowStore": False},
                "elsewhere": ["ELSEWHERE", "192.0.2.1", 104],
            },
        },
    )
    yield process
    process.stop()


def _echo(server: ObeliskProcess, calling: str, called: str = AET) -> int:
    port = str(server.config["DicomPort"])
    return dcmtk("echoscu", "-aet", calling, "-aec", called, "127.0.0.1", port).returncode


def _count(server: ObeliskProcess) -> int:
    return int(httpx.get(f"{server.url}/statistics").json()["CountInstances"])


def test_unknown_aet_refused_when_nothing_is_always_allowed(strict: ObeliskProcess) -> None:
    assert _echo(strict, "STRANGER") != 0
    assert _echo(strict, "KNOWN") == 0
    assert _echo(strict, "known") == 0  # AETs compare case-insensitively, as in Orthanc
    assert _echo(strict, "ELSEWHERE") != 0  # known AET, but not from its configured host
    assert _echo(strict, "KNOWN", called="SOMEONE") != 0  # DicomCheckCalledAet


def test_per_modality_permissions(strict: ObeliskProcess, dicom_files: list[Path]) -> None:
    port = str(strict.config["DicomPort"])
    dcmtk("storescu", "-aet", "KNOWN", "-aec", AET, "127.0.0.1", port, str(dicom_files[0]))
    assert _count(strict) == 0  # AllowStore false: refused (0x0124)
    found = dcmtk(
        "findscu",
        "-aet",
        "KNOWN",
        "-aec",
        AET,
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "127.0.0.1",
        port,
    )
    assert found.returncode == 0, found.stderr


def test_modality_added_over_rest_may_then_associate(strict: ObeliskProcess) -> None:
    assert _echo(strict, "LATECOMER") != 0
    body = {"AET": "LATECOMER", "Host": "127.0.0.1", "Port": 104}
    assert httpx.put(f"{strict.url}/modalities/late", json=body).status_code == 200
    assert _echo(strict, "LATECOMER") == 0
    assert httpx.delete(f"{strict.url}/modalities/late").status_code == 200
    assert _echo(strict, "LATECOMER") != 0


def test_always_allow_lets_strangers_echo_and_store_but_not_find(
    server: ObeliskProcess, dicom_files: list[Path]
) -> None:
    """Orthanc's defaults: DicomAlwaysAllowEcho/Store true, DicomAlwaysAllowFind false."""
    port = str(server.config["DicomPort"])
    assert _echo(server, "STRANGER") == 0
    before = _count(server)
    stored = dcmtk(
        "storescu", "-aet", "STRANGER", "-aec", AET, "127.0.0.1", port, str(dicom_files[-1])
    )
    assert stored.returncode == 0, stored.stderr
    found = dcmtk(
        "findscu",
        "-v",
        "-aet",
        "STRANGER",
        "-aec",
        AET,
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "StudyInstanceUID",
        "127.0.0.1",
        port,
    )
    assert "Find Response: 1 (Pending)" not in found.stdout + found.stderr
    assert _count(server) >= before
