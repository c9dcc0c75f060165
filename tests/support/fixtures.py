"""Access to the recorded Orthanc 1.10.1 answers in ``tests/fixtures/orthanc/``.

    exchange = load_exchange("main", "series-a1")
    exchange["response"]["json"], exchange["response"]["text"]

Also :func:`orthanc_json` and :func:`orthanc_error_json`, which reproduce Orthanc's JSON text
byte for byte (checked against every recorded answer), and :func:`without_volatile`, which
blanks the fields that change between recordings (dates, uuids, ports).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "orthanc"
VOLATILE = "<volatile>"


@cache
def load_manifest() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((FIXTURES / "manifest.json").read_text("utf-8"))
    return manifest


def load_exchange(scenario: str, name: str) -> dict[str, Any]:
    exchange: dict[str, Any] = json.loads((FIXTURES / scenario / f"{name}.json").read_text("utf-8"))
    return exchange


def exchange_names(scenario: str) -> list[str]:
    names: list[str] = load_manifest()["scenarios"][scenario]["exchanges"]
    return names


def input_bytes(name: str) -> bytes:
    """The DICOM file uploaded as ``name`` (``"a1-1"`` … ``"d1-1"``)."""
    return (FIXTURES / "inputs" / f"{name}.dcm").read_bytes()


def input_names() -> list[str]:
    """Input names in upload order."""
    return list(load_manifest()["inputs"])


def orthanc_ids(name: str) -> dict[str, str]:
    """``{"Patient": …, "Study": …, "Series": …, "Instance": …}`` computed by Orthanc."""
    ids: dict[str, str] = load_manifest()["inputs"][name]["ids"]
    return ids


def without_volatile(value: Any, keys: frozenset[str] | None = None) -> Any:
    """A copy of ``value`` whose volatile fields (see the manifest) are replaced by a marker."""
    volatile = keys if keys is not None else frozenset(load_manifest()["volatile_fields"])
    if isinstance(value, dict):
        return {
            k: (VOLATILE if k in volatile and not isinstance(v, dict | list) else
                without_volatile(v, volatile))
            for k, v in value.items()
        }  # fmt: skip
    if isinstance(value, list):
        return [without_volatile(v, volatile) for v in value]
    return value


# --------------------------------------------------------------------------- JSON text


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # JsonCpp prints 17 significant digits; not used by these answers
    return json.dumps(value, ensure_ascii=True)


def _write(value: Any, indent: str, step: str, out: list[str], at_line_start: bool) -> None:
    """JsonCpp ``BuiltStyledStreamWriter`` with ``commentStyle: All`` (Orthanc's writer)."""
    if isinstance(value, dict) and value:
        if not at_line_start:
            out.append("\n" + indent)
        out.append("{")
        inner = indent + step
        for n, key in enumerate(sorted(value)):
            out.append(("," if n else "") + "\n" + inner + json.dumps(key) + " : ")
            _write(value[key], inner, step, out, at_line_start=False)
        out.append("\n" + indent + "}")
    elif isinstance(value, list) and value:
        if not at_line_start:
            out.append("\n" + indent)
        out.append("[")
        inner = indent + step
        for n, item in enumerate(value):
            out.append(("," if n else "") + "\n" + inner)
            _write(item, inner, step, out, at_line_start=True)
        out.append("\n" + indent + "]")
    elif isinstance(value, dict):
        out.append("{}")
    elif isinstance(value, list):
        out.append("[]")
    else:
        out.append(_scalar(value))


def orthanc_json(value: Any) -> str:
    """The text of a successful Orthanc JSON answer: 3-space indent, no final newline."""
    out: list[str] = []
    _write(value, "", "   ", out, at_line_start=True)
    return "".join(out)


def orthanc_error_json(value: Any) -> str:
    """The text of an Orthanc error body: tab indent, final newline."""
    out: list[str] = []
    _write(value, "", "\t", out, at_line_start=True)
    return "".join(out) + "\n"


def with_references(name: str = "a1-1") -> Any:
    """An input file's dataset given a two-item ReferencedImageSequence (for sequence paths)."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(FIXTURES / "inputs" / f"{name}.dcm")
    items = []
    for n in range(2):
        item = Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        item.ReferencedSOPInstanceUID = f"1.2.3.{n}"
        item.ReferencedFrameNumber = "1"
        items.append(item)
    ds.ReferencedImageSequence = Sequence(items)
    return ds
