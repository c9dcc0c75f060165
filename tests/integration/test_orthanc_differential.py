"""Replays every exchange recorded from a real Orthanc 1.10.1 against a real Obelisk process.

The same DICOM files are uploaded in the same order, so identifiers, lists and find answers must
be equal, not just alike. Fields that change between runs (dates, uuids, ports) are blanked on
both sides. Where Obelisk differs on purpose, :data:`DIFFERENCES` says so and why; an exchange
for a route a later issue will add is listed in :data:`NOT_YET`.

Fixtures: ``tests/fixtures/orthanc/`` (regenerate with ``tests/fixtures/record_orthanc.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.server_process import ObeliskProcess
from tests.support.fixtures import (
    exchange_names,
    input_bytes,
    input_names,
    load_exchange,
    without_volatile,
)

#: name → (Obelisk's status, why it differs). Obelisk answers these with a clearer error.
DIFFERENCES: dict[str, tuple[int, str]] = {
    "find-study-unknown-tag-name": (400, "an unknown tag name is the client's error, not a 500"),
    "error-find-expand-not-bool": (400, "a mistyped field is the client's error, not a 500"),
    "error-find-query-not-object": (400, "a mistyped field is the client's error, not a 500"),
}
#: Exchanges not compared yet, with the reason.
NOT_YET: dict[str, str] = {}
#: Keys whose values legitimately differ between two servers.
VOLATILE = frozenset(
    {"Date", "LastUpdate", "ReceptionDate", "FileUuid", "Uuid", "HttpPort", "DicomPort", "RemoteIP"}
)
#: In /system only: the server's name, plugins, and Obelisk's own version field.
SYSTEM_VOLATILE = VOLATILE | {"Name", "PluginsEnabled"}
_NOT_DICOM = b"this is not a DICOM file"


def _body(request: dict[str, Any]) -> bytes | None:
    if "body_sha256" not in request:
        return None
    wanted = request["body_sha256"]
    for name in input_names():
        data = input_bytes(name)
        if hashlib.sha256(data).hexdigest() == wanted:
            return data
    for candidate in (_NOT_DICOM, b""):
        if hashlib.sha256(candidate).hexdigest() == wanted:
            return candidate
    raise AssertionError(f"no input matches the recorded body {wanted}")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, httpx.Response]]:
    """Every exchange of the "main" scenario, replayed in order on one fresh server."""
    workdir: Path = tmp_path_factory.mktemp("differential")
    answers: dict[str, httpx.Response] = {}
    with ObeliskProcess(workdir) as server, httpx.Client(base_url=server.url) as client:
        for name in exchange_names("main"):
            request = load_exchange("main", name)["request"]
            kwargs: dict[str, Any] = {}
            if "body" in request:
                body = request["body"]
                kwargs["content"] = body.encode() if isinstance(body, str) else None
                if not isinstance(body, str):
                    kwargs = {"json": body}
            elif "body_text" in request:
                kwargs["content"] = request["body_text"].encode()
            elif (raw := _body(request)) is not None:
                kwargs["content"] = raw
            answers[name] = client.request(request["method"], request["path"], **kwargs)
        yield answers


def _comparable(name: str, value: Any) -> Any:
    if name.startswith("system") and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "ObeliskVersion"}
        return without_volatile(value, SYSTEM_VOLATILE)
    return without_volatile(value, VOLATILE)


@pytest.mark.parametrize("name", exchange_names("main"))
def test_same_answer_as_orthanc(name: str, replayed: dict[str, httpx.Response]) -> None:
    if name in NOT_YET:
        pytest.skip(NOT_YET[name])
    recorded = load_exchange("main", name)["response"]
    ours = replayed[name]
    expected_status = DIFFERENCES.get(name, (recorded["status"], ""))[0]
    assert ours.status_code == expected_status, ours.text
    if name in DIFFERENCES or ours.status_code >= 400:
        if "json" in recorded and isinstance(recorded["json"], dict) and ours.content:
            body = ours.json()
            assert set(recorded["json"]) - {"Details"} <= set(body)
            if name not in DIFFERENCES:
                assert body["OrthancStatus"] == recorded["json"]["OrthancStatus"]
                assert body["Message"] == recorded["json"]["Message"]
        return
    if recorded.get("json") is not None:
        assert _comparable(name, ours.json()) == _comparable(name, recorded["json"])
    elif "sha256" in recorded:
        assert hashlib.sha256(ours.content).hexdigest() == recorded["sha256"]
    else:
        assert ours.text == recorded.get("text", "")
