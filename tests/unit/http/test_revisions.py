"""ETag and If-Match on metadata and attachments, with CheckRevisions off and on.

The statuses, headers and error bodies are those a real Orthanc 1.10.1 answered to the same
requests. One difference is on purpose: Orthanc's built-in SQLite index keeps no revisions, so
its reads always say revision 0 (only the answer to a PUT shows the next one); Obelisk keeps
them, as Orthanc does over a database that supports revisions (its PostgreSQL plugin).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from obelisk.core.identifiers import ResourceIds
from tests.conftest import client_for
from tests.dicom_factory import make_dicom

IDS = ResourceIds.compute("P001", "1.2.3", "1.2.3.4", "1.2.3.4.5")
METADATA = f"/instances/{IDS.instance}/metadata/1024"
ATTACHMENT = f"/instances/{IDS.instance}/attachments/1024"
URLS = [METADATA, ATTACHMENT]
CONFLICT_MESSAGE = (
    "A bad revision number was provided, which might indicate conflict between multiple writers"
)


def _md5(data: bytes | str) -> str:
    return hashlib.md5(data.encode() if isinstance(data, str) else data).hexdigest()


def _etag(revision: int, data: bytes | str) -> str:
    return f'"{revision}-{_md5(data)}"'


def _client(check_revisions: bool) -> Iterator[TestClient]:
    for client in client_for(CheckRevisions=check_revisions):
        assert client.post("/instances", content=make_dicom()).status_code == 200
        yield client


@pytest.fixture(params=[False, True], ids=["CheckRevisions-false", "CheckRevisions-true"])
def any_client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    yield from _client(request.param)


@pytest.fixture
def lenient(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    yield from _client(False)


@pytest.fixture
def strict(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    yield from _client(True)


def _read(client: TestClient, url: str) -> Any:
    return client.get(url + "/data" if "/attachments/" in url else url)


def _error(answer: Any, method: str, url: str, status: int) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(answer.text)
    assert answer.status_code == status
    assert body["HttpStatus"] == status and body["Method"] == method and body["Uri"] == url
    return body


def _assert_conflict(answer: Any, method: str, url: str, details: str | None = None) -> None:
    body = _error(answer, method, url, 409)
    expected = {
        "HttpError": "Conflict",
        "HttpStatus": 409,
        "Message": CONFLICT_MESSAGE,
        "Method": method,
        "OrthancError": CONFLICT_MESSAGE,
        "OrthancStatus": 43,
        "Uri": url,
    }
    if details is not None:
        expected["Details"] = details
    assert body == expected
    assert answer.text.startswith("{\n\t")


# -- ETag on reads ----------------------------------------------------------------------------
def test_metadata_read_and_write_carry_the_etag(any_client: TestClient) -> None:
    put = any_client.put(METADATA, content="v1")
    assert (put.status_code, put.text, put.headers["etag"]) == (200, "", _etag(0, "v1"))
    assert put.headers["content-type"].startswith("text/plain")
    got = any_client.get(METADATA)
    assert (got.text, got.headers["etag"]) == ("v1", _etag(0, "v1"))
    for name in ("ReceptionDate", "TransferSyntax"):  # built-in ones too
        builtin = any_client.get(f"/instances/{IDS.instance}/metadata/{name}")
        assert builtin.headers["etag"] == _etag(0, builtin.text)
    last_update = any_client.get(f"/studies/{IDS.study}/metadata/LastUpdate")
    assert last_update.headers["etag"] == _etag(0, last_update.text)
    unicode = any_client.put(f"/studies/{IDS.study}/metadata/1024", content="é".encode())
    assert unicode.headers["etag"] == '"0-66ddcd97cfdeabb2f6fb8a999b4bc76f"'  # Orthanc's
    # Listings have none, and say nothing of revisions.
    listing = any_client.get(f"/instances/{IDS.instance}/metadata?expand")
    assert "etag" not in listing.headers and listing.json()["1024"] == "v1"


def test_every_attachment_read_carries_the_etag(any_client: TestClient) -> None:
    put = any_client.put(ATTACHMENT, content=b"abc")
    assert (put.status_code, put.json(), put.headers["etag"]) == (200, {}, _etag(0, b"abc"))
    for suffix in (
        "",
        "/data",
        "/compressed-data",
        "/info",
        "/md5",
        "/size",
        "/compressed-md5",
        "/compressed-size",
        "/is-compressed",
    ):
        assert any_client.get(ATTACHMENT + suffix).headers["etag"] == _etag(0, b"abc"), suffix
    for suffix in ("/verify-md5", "/compress"):
        assert "etag" not in any_client.post(ATTACHMENT + suffix).headers
    # Compressing keeps the uncompressed MD5, which is the one the ETag shows.
    assert any_client.get(ATTACHMENT + "/info").headers["etag"].endswith(f'-{_md5(b"abc")}"')
    dicom = any_client.get(f"/instances/{IDS.instance}/attachments/dicom/data")
    assert dicom.headers["etag"] == _etag(0, dicom.content)
    assert dicom.headers["content-type"] == "application/dicom"
    stored = any_client.get(f"/instances/{IDS.instance}/attachments/dicom/compressed-data")
    assert stored.headers["content-type"] == "application/octet-stream"  # as Orthanc
    assert stored.headers["etag"] == _etag(0, dicom.content)
    assert "etag" not in any_client.get(f"/instances/{IDS.instance}/file").headers
    assert "etag" not in any_client.get(f"/instances/{IDS.instance}/attachments").headers


# -- If-Match, honoured whatever CheckRevisions says -----------------------------------------
@pytest.mark.parametrize("url", URLS)
def test_if_match_guards_a_change(any_client: TestClient, url: str) -> None:
    assert any_client.put(url, content=b"v1").status_code == 200
    md5 = _md5(b"v1")
    for stale in (_etag(1, b"v1"), _etag(0, b"other"), "0-zz", "0-", f"0-{md5.upper()}"):
        _assert_conflict(
            any_client.put(url, content=b"lost", headers={"If-Match": stale}), "PUT", url
        )
    assert _read(any_client, url).content == b"v1"
    put = any_client.put(url, content=b"v2", headers={"If-Match": _etag(0, b"v1")})
    assert put.status_code == 200 and put.headers["etag"] == _etag(1, b"v2")
    # Unquoted, with spaces around, with a "+" or leading zeros: all read as Orthanc reads them.
    put = any_client.put(url, content=b"v3", headers={"If-Match": f"  +01-{_md5(b'v2')} "})
    assert put.status_code == 200 and put.headers["etag"] == _etag(2, b"v3")
    assert _read(any_client, url).headers["etag"] == _etag(2, b"v3")
    # The ETag just read is stale once someone else wrote.
    _assert_conflict(
        any_client.put(url, content=b"lost", headers={"If-Match": _etag(1, b"v2")}), "PUT", url
    )


@pytest.mark.parametrize("url", URLS)
def test_if_match_guards_a_delete(any_client: TestClient, url: str) -> None:
    any_client.put(url, content=b"v1")
    _assert_conflict(any_client.delete(url, headers={"If-Match": _etag(1, b"v1")}), "DELETE", url)
    _assert_conflict(any_client.delete(url, headers={"If-Match": _etag(0, b"v2")}), "DELETE", url)
    deleted = any_client.delete(url, headers={"If-Match": _etag(0, b"v1")})
    assert (deleted.status_code, deleted.text) == (200, "")
    assert deleted.headers["content-type"].startswith("text/plain")
    again = any_client.delete(url, headers={"If-Match": _etag(0, b"v1")})
    assert _error(again, "DELETE", url, 404)["OrthancStatus"] == 17


@pytest.mark.parametrize("url", URLS)
def test_if_match_on_a_missing_item_creates_it(any_client: TestClient, url: str) -> None:
    put = any_client.put(url, content=b"n", headers={"If-Match": _etag(7, b"q")})
    assert put.status_code == 200 and put.headers["etag"] == _etag(0, b"n")
    assert _read(any_client, url).content == b"n"


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ("0", "0"),
        ('"5"', "5"),
        ("abc", "abc"),
        ("*", "*"),
        ("-1-zz", "-1-zz"),
        ("9223372036854775808-aa", "9223372036854775808-aa"),
        ("0x0-aa", "0x0-aa"),
        ('W/"0-aa"', 'W/"0-aa"'),
    ],
)
def test_a_malformed_if_match_is_a_bad_request(
    any_client: TestClient, url: str, header: str, shown: str
) -> None:
    any_client.put(url, content=b"v1")
    details = (
        'The "if-match" HTTP header should contain the ETag (revision followed by MD5 hash), '
        f"but found: {shown}"
    )
    for answer, method in (
        (any_client.put(url, content=b"x", headers={"If-Match": header}), "PUT"),
        (any_client.delete(url, headers={"If-Match": header}), "DELETE"),
    ):
        body = _error(answer, method, url, 400)
        assert (body["OrthancStatus"], body["Details"]) == (3, details)
    assert _read(any_client, url).content == b"v1"


# -- without If-Match -------------------------------------------------------------------------
@pytest.mark.parametrize("url", URLS)
def test_without_check_revisions_if_match_is_optional(lenient: TestClient, url: str) -> None:
    assert lenient.get("/system").json()["CheckRevisions"] is False
    assert lenient.put(url, content=b"v1").status_code == 200
    put = lenient.put(url, content=b"v2")
    assert put.status_code == 200 and put.headers["etag"] == _etag(1, b"v2")
    assert lenient.delete(url).status_code == 200
    missing = lenient.delete(url)
    assert _error(missing, "DELETE", url, 404)["OrthancStatus"] == 17


@pytest.mark.parametrize("url", URLS)
def test_check_revisions_needs_if_match_to_change_or_delete(strict: TestClient, url: str) -> None:
    assert strict.get("/system").json()["CheckRevisions"] is True
    created = strict.put(url, content=b"v1")  # creating needs none
    assert created.status_code == 200 and created.headers["etag"] == _etag(0, b"v1")
    _assert_conflict(strict.put(url, content=b"v2"), "PUT", url)
    missing_header = 'HTTP header "If-Match" is missing, as "CheckRevisions" is "true"'
    _assert_conflict(strict.delete(url), "DELETE", url, missing_header)
    assert _read(strict, url).content == b"v1"
    assert strict.put(url, content=b"v2", headers={"If-Match": _etag(0, b"v1")}).status_code == 200
    assert strict.delete(url, headers={"If-Match": _etag(1, b"v2")}).status_code == 200
    # Deleting needs If-Match even when there is nothing to delete, as in Orthanc.
    _assert_conflict(strict.delete(url), "DELETE", url, missing_header)


def test_server_maintained_items_stay_forbidden(strict: TestClient) -> None:
    base = f"/instances/{IDS.instance}"
    header = {"If-Match": _etag(0, b"x")}
    assert strict.put(f"{base}/metadata/ReceptionDate", content="x").status_code == 403
    assert strict.delete(f"{base}/metadata/ReceptionDate", headers=header).status_code == 403
    assert strict.delete(f"{base}/attachments/dicom", headers=header).status_code == 403


def test_unknown_resource_comes_before_the_revision_check(strict: TestClient) -> None:
    url = "/instances/nope/metadata/1024"
    answer = strict.put(url, content="x", headers={"If-Match": _etag(0, "x")})
    assert _error(answer, "PUT", url, 404)["OrthancStatus"] == 17
