"""Settings: Orthanc's defaults, Obelisk's section, and clear errors for bad values."""

from __future__ import annotations

import pytest

from obelisk.config import load_settings
from obelisk.errors import ConfigurationError


def test_durability_defaults_match_orthanc() -> None:
    settings = load_settings(None, {})
    assert settings["SyncStorageArea"] is True
    assert settings.obelisk["IndexSynchronous"] == "NORMAL"
    assert settings.obelisk["SyncDirectories"] is False


def test_index_synchronous_accepts_full_in_any_case() -> None:
    settings = load_settings(None, {"Obelisk": {"IndexSynchronous": "full"}})
    assert settings.obelisk["IndexSynchronous"] == "FULL"


@pytest.mark.parametrize("value", ["OFF", "NORMAL; DROP TABLE resources", "EXTRA"])
def test_index_synchronous_rejects_other_values(value: str) -> None:
    with pytest.raises(ConfigurationError, match="IndexSynchronous"):
        load_settings(None, {"Obelisk": {"IndexSynchronous": value}})


def test_sync_storage_area_must_be_a_boolean() -> None:
    with pytest.raises(ConfigurationError, match="SyncStorageArea"):
        load_settings(None, {"SyncStorageArea": "yes"})
