"""Every configuration option Obelisk reads is documented (a new option cannot slip in silently)."""

from __future__ import annotations

from pathlib import Path

import pytest

from obelisk.config import OBELISK_OPTIONS, OPTIONS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _all_docs() -> str:
    return "".join(page.read_text(encoding="utf-8") for page in sorted(DOCS.glob("*.md")))


#: Families documented once, with a wildcard.
FAMILIES = {
    "DicomAlwaysAllow": "`DicomAlwaysAllow*`",
    "TransferSyntaxAccepted": "`*TransferSyntaxAccepted`",
}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_orthanc_option_is_documented(option: str) -> None:
    text = _all_docs()
    families = [doc for part, doc in FAMILIES.items() if part in option]
    assert f"`{option}`" in text or any(doc in text for doc in families), (
        f"{option} is not in docs/"
    )


@pytest.mark.parametrize("option", sorted(OBELISK_OPTIONS))
def test_obelisk_option_is_in_the_configuration_page(option: str) -> None:
    assert f"`{option}`" in (DOCS / "configuration.md").read_text(encoding="utf-8")
