"""Modalities: Orthanc's two configuration forms, runtime changes kept in the index, rules."""

from __future__ import annotations

import pytest

from obelisk.errors import BadRequest, ObeliskError
from obelisk.index.sqlite import SqliteIndex
from obelisk.services.modalities import (
    AccessPolicy,
    DicomRequest,
    ModalityRegistry,
    modality_json,
    parse_modality,
)


def test_array_and_object_forms() -> None:
    array = parse_modality("a", ["PACS", "10.0.0.1", 104, "GE"])
    assert (array.aet, array.host, array.port, array.manufacturer) == (
        "PACS",
        "10.0.0.1",
        104,
        "GE",
    )
    assert array.allow_store and array.allow_move
    obj = parse_modality("b", {"AET": "X", "Host": "h", "Port": "105", "AllowStore": False})
    assert obj.port == 105 and not obj.allow_store and obj.allow_echo
    rendered = modality_json(obj)
    assert rendered["AET"] == "X" and rendered["AllowStore"] is False
    assert set(rendered) >= {"AllowGet", "AllowNAction", "LocalAet", "Timeout", "UseDicomTls"}


@pytest.mark.parametrize(
    "value", [["X", "h"], {"AET": "X", "Port": 1}, {"AET": "X", "Host": "h", "Port": 0}, 3]
)
def test_bad_modalities_are_refused(value: object) -> None:
    with pytest.raises(BadRequest):
        parse_modality("bad", value)


def test_registry_persists_changes_in_the_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "index.db")
    index = SqliteIndex(path)
    registry = ModalityRegistry(index, {"conf": ["CONF", "127.0.0.1", 104]})
    registry.put("new", {"AET": "NEW", "Host": "127.0.0.1", "Port": 11112})
    registry.delete("conf")
    index.close()
    again = ModalityRegistry(SqliteIndex(path), {"conf": ["CONF", "127.0.0.1", 104]})
    assert list(again.all()) == ["new"]
    with pytest.raises(ObeliskError) as caught:
        again.get("conf")
    assert caught.value.code.number == 7


def test_policy_follows_orthanc_filter() -> None:
    registry = ModalityRegistry(
        SqliteIndex(":memory:"),
        {
            "known": {"AET": "KNOWN", "Host": "10.1.1.1", "Port": 104, "AllowStore": False},
        },
    )
    strict = AccessPolicy(frozenset(), check_modality_host=True)
    assert not strict.allows_connection(registry, "STRANGER", "127.0.0.1")
    assert strict.allows_connection(registry, "known", "10.1.1.1")  # AETs: case-insensitive
    assert not strict.allows_connection(registry, "KNOWN", "127.0.0.1")  # host checked
    assert strict.allows(registry, DicomRequest.FIND, "KNOWN", "10.1.1.1")
    assert not strict.allows(registry, DicomRequest.STORE, "KNOWN", "10.1.1.1")

    lenient = AccessPolicy.from_settings(
        {"DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True}
    )
    assert lenient.allows_connection(registry, "STRANGER", "127.0.0.1")
    assert lenient.allows(registry, DicomRequest.STORE, "STRANGER", "127.0.0.1")
    assert not lenient.allows(registry, DicomRequest.FIND, "STRANGER", "127.0.0.1")
