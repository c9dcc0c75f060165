"""Transcoding on send: a peer that accepts only implicit VR little endian gets JPEG, JPEG 2000
and RLE instances decompressed (store jobs, store-straight, C-GET, C-MOVE sub-operations), with
the same pixels; a modality with ``AllowTranscoding: false`` gets nothing, as in Orthanc 1.10.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian, JPEG2000Lossless
from pynetdicom import AE, build_role, evt

from tests.integration.dicom.conftest import AET, start_server
from tests.integration.server_process import ObeliskProcess, free_port
from tests.support.images import gradient, jpeg_baseline, make_image, rle, to_bytes

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
STUDY = "1.2.826.0.1.3680043.8.498.77"
SERIES = "1.2.826.0.1.3680043.8.498.77.1"


def _instances() -> dict[str, bytes]:
    """One 8-bit JPEG baseline, one 12-bit JPEG 2000 lossless, one 12-bit RLE instance."""
    common: dict[str, Any] = {"study_uid": STUDY, "series_uid": SERIES}
    eight = gradient(32, 32, 255).astype(np.uint8)
    jpeg = jpeg_baseline(make_image(eight, sop_uid=f"{SERIES}.1", **common))
    j2k = make_image(gradient(32, 32, 4095), sop_uid=f"{SERIES}.2", **common)
    j2k.BitsStored, j2k.HighBit = 12, 11
    j2k.compress(JPEG2000Lossless, generate_instance_uid=False)
    packed = rle(make_image(gradient(32, 32, 4095), sop_uid=f"{SERIES}.3", **common))
    return {"jpeg": to_bytes(jpeg), "j2k": to_bytes(j2k), "rle": to_bytes(packed)}


class UncompressedPeer:
    """A storage SCP (AET ``PEER``) that accepts implicit VR little endian only."""

    def __init__(self, port: int) -> None:
        self.received: list[tuple[str, pydicom.Dataset]] = []
        self.ae = AE(ae_title="PEER")
        self.ae.add_supported_context(SECONDARY_CAPTURE, [ImplicitVRLittleEndian])
        self.server = self.ae.start_server(
            ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )

    def _on_store(self, event: evt.Event) -> int:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        self.received.append((str(event.context.transfer_syntax), dataset))
        return 0

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ObeliskProcess, Any]]:
    port = free_port()
    peer = UncompressedPeer(port)
    process = start_server(
        tmp_path_factory.mktemp("transcoding"),
        {
            "DicomModalities": {
                "peer": ["PEER", "127.0.0.1", port],
                "strict": {
                    "AET": "PEER",
                    "Host": "127.0.0.1",
                    "Port": port,
                    "AllowTranscoding": False,
                },
            }
        },
    )
    try:
        yield process, peer
    finally:
        process.stop()
        peer.stop()


@pytest.fixture(scope="module")
def stored(setup: tuple[ObeliskProcess, UncompressedPeer]) -> dict[str, tuple[str, bytes]]:
    """name → (public id, original bytes)."""
    server, _ = setup
    out = {}
    for name, data in _instances().items():
        answer = httpx.post(f"{server.url}/instances", content=data)
        assert answer.status_code == 200, answer.text
        out[name] = (answer.json()["ID"], data)
    return out


def _same_pixels(received: pydicom.Dataset, original: bytes) -> None:
    source = pydicom.dcmread(pydicom.filebase.DicomBytesIO(original))
    assert received.SOPInstanceUID == source.SOPInstanceUID
    np.testing.assert_array_equal(received.pixel_array, source.pixel_array)


@pytest.mark.parametrize("name", ["jpeg", "j2k", "rle"])
def test_store_job_decompresses_for_an_uncompressed_peer(
    setup: tuple[ObeliskProcess, UncompressedPeer],
    stored: dict[str, tuple[str, bytes]],
    name: str,
) -> None:
    server, peer = setup
    public_id, original = stored[name]
    before = len(peer.received)
    answer = httpx.post(
        f"{server.url}/modalities/peer/store", json={"Resources": [public_id]}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["FailedInstancesCount"] == 0
    assert len(peer.received) == before + 1
    syntax, dataset = peer.received[-1]
    assert syntax == ImplicitVRLittleEndian
    _same_pixels(dataset, original)


def test_store_straight_decompresses(
    setup: tuple[ObeliskProcess, UncompressedPeer], stored: dict[str, tuple[str, bytes]]
) -> None:
    server, peer = setup
    _, original = stored["j2k"]
    answer = httpx.post(f"{server.url}/modalities/peer/store-straight", content=original)
    assert answer.status_code == 200, answer.text
    syntax, dataset = peer.received[-1]
    assert syntax == ImplicitVRLittleEndian
    _same_pixels(dataset, original)


def test_allow_transcoding_false_sends_nothing(
    setup: tuple[ObeliskProcess, UncompressedPeer], stored: dict[str, tuple[str, bytes]]
) -> None:
    server, peer = setup
    public_id, _ = stored["jpeg"]
    before = len(peer.received)
    answer = httpx.post(
        f"{server.url}/modalities/strict/store", json={"Resources": [public_id]}, timeout=60
    )
    assert answer.status_code == 500
    body = answer.json()
    assert body["OrthancStatus"] == 9  # NetworkProtocol, as Orthanc 1.10.1
    assert body["Details"] == (
        f"No valid presentation context was negotiated for SOP class UID [{SECONDARY_CAPTURE}]"
        " and transfer syntax [1.2.840.10008.1.2.4.50] while sending to modality [PEER]"
    )
    job = httpx.post(
        f"{server.url}/modalities/strict/store",
        json={"Resources": [public_id], "Asynchronous": True},
    ).json()
    info = _wait(server, job["ID"])
    assert info["State"] == "Failure" and info["ErrorCode"] == 9
    assert len(peer.received) == before


def _wait(server: ObeliskProcess, job_id: str) -> dict[str, Any]:
    for _ in range(200):
        info: dict[str, Any] = httpx.get(f"{server.url}/jobs/{job_id}").json()
        if info["State"] in ("Success", "Failure"):
            return info
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def _identifier() -> pydicom.Dataset:
    identifier = pydicom.Dataset()
    identifier.QueryRetrieveLevel = "SERIES"
    identifier.StudyInstanceUID = STUDY
    identifier.SeriesInstanceUID = SERIES
    return identifier


def test_c_get_sub_operations_are_transcoded(
    setup: tuple[ObeliskProcess, UncompressedPeer], stored: dict[str, tuple[str, bytes]]
) -> None:
    server, _ = setup
    received: list[tuple[str, pydicom.Dataset]] = []

    def on_store(event: evt.Event) -> int:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        received.append((str(event.context.transfer_syntax), dataset))
        return 0

    ae = AE(ae_title="PEER")
    ae.add_requested_context(STUDY_ROOT_GET)
    ae.add_requested_context(SECONDARY_CAPTURE, [ImplicitVRLittleEndian])
    assoc = ae.associate(
        "127.0.0.1",
        int(server.config["DicomPort"]),
        ae_title=AET,
        ext_neg=[build_role(SECONDARY_CAPTURE, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    try:
        answers = [status for status, _ in assoc.send_c_get(_identifier(), STUDY_ROOT_GET)]
    finally:
        assoc.release()
    final = answers[-1]
    assert final.Status == 0 and final.NumberOfCompletedSuboperations == 3
    assert {syntax for syntax, _ in received} == {ImplicitVRLittleEndian}
    originals = {_uid(data): data for _, data in stored.values()}
    for _, dataset in received:
        _same_pixels(dataset, originals[str(dataset.SOPInstanceUID)])


def test_c_move_sub_operations_are_transcoded(
    setup: tuple[ObeliskProcess, UncompressedPeer], stored: dict[str, tuple[str, bytes]]
) -> None:
    server, peer = setup
    before = len(peer.received)
    ae = AE(ae_title="PEER")
    ae.add_requested_context(STUDY_ROOT_MOVE)
    assoc = ae.associate("127.0.0.1", int(server.config["DicomPort"]), ae_title=AET)
    assert assoc.is_established
    try:
        answers = [s for s, _ in assoc.send_c_move(_identifier(), "PEER", STUDY_ROOT_MOVE)]
    finally:
        assoc.release()
    final = answers[-1]
    assert final.Status == 0 and final.NumberOfCompletedSuboperations == 3
    moved = peer.received[before:]
    assert len(moved) == 3
    originals = {_uid(data): data for _, data in stored.values()}
    for syntax, dataset in moved:
        assert syntax == ImplicitVRLittleEndian
        _same_pixels(dataset, originals[str(dataset.SOPInstanceUID)])


def _uid(data: bytes) -> str:
    return str(pydicom.dcmread(pydicom.filebase.DicomBytesIO(data)).SOPInstanceUID)
