from __future__ import annotations

import base64

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from obelisk.dicomweb.dicom_json import dataset_json, from_text


def test_values_from_index_strings() -> None:
    assert from_text(0x00100010, "DOE^JOHN=ド^ジョン") == {
        "vr": "PN",
        "Value": [{"Alphabetic": "DOE^JOHN", "Ideographic": "ド^ジョン"}],
    }
    assert from_text(0x00200013, "7") == {"vr": "IS", "Value": [7]}
    assert from_text(0x00180050, "2.50") == {"vr": "DS", "Value": [2.5]}
    assert from_text(0x00180050, "3") == {"vr": "DS", "Value": [3]}
    assert from_text(0x00200032, "-1.5\\2\\3e1") == {"vr": "DS", "Value": [-1.5, 2, 30.0]}
    assert from_text(0x00080061, "CT\\MR") == {"vr": "CS", "Value": ["CT", "MR"]}
    assert from_text(0x00081030, "") == {"vr": "LO"}
    assert from_text(0x00200013, "not a number") == {"vr": "IS", "Value": ["not a number"]}


def test_datasets_with_sequences_and_binaries() -> None:
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    item.add_new(0x00091010, "OB", b"\x01" * 2000)
    ds = Dataset()
    ds.ReferencedImageSequence = Sequence([item])
    ds.add_new(0x00091011, "OB", b"\x00\x01")
    ds.Rows = 4
    ds.PixelSpacing = ["0.5", "0.5"]
    ds.FrameIncrementPointer = 0x00181063
    ds.add_new(0x7FE00010, "OW", b"\x00" * 32)

    def uri(path: tuple[int, ...]) -> str:
        return "bulk/" + "/".join(str(p) for p in path)

    result = dataset_json(ds, uri)
    nested = result["00081140"]["Value"][0]
    assert nested["00081155"] == {"vr": "UI", "Value": ["1.2.3"]}
    assert nested["00091010"] == {"vr": "OB", "BulkDataURI": f"bulk/{0x00081140}/0/{0x00091010}"}
    assert result["00091011"] == {
        "vr": "OB",
        "InlineBinary": base64.b64encode(b"\x00\x01").decode(),
    }
    assert result["00280010"] == {"vr": "US", "Value": [4]}
    assert result["00280030"] == {"vr": "DS", "Value": [0.5, 0.5]}
    assert result["00280009"] == {"vr": "AT", "Value": ["00181063"]}
    assert result["7FE00010"] == {"vr": "OW", "BulkDataURI": f"bulk/{0x7FE00010}"}
