"""The direct path's buffered PDU reader, over a real socket pair."""

from __future__ import annotations

import socket
import threading

import pytest

from obelisk.dicom import pdu
from obelisk.dicom.direct_path import ConnectionClosed, PduReader


def _send_in_pieces(sock: socket.socket, data: bytes, piece: int) -> threading.Thread:
    def send() -> None:
        for start in range(0, len(data), piece):
            sock.sendall(data[start : start + piece])
        sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=send)
    thread.start()
    return thread


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_pdus_come_out_whole_however_the_bytes_arrive(piece: int) -> None:
    bodies = [b"x" * 10, bytes(range(256)) * 64, b"y" * 70_000, b"", b"z" * 3]
    stream = b"".join(pdu.p_data(1, body) for body in bodies) + pdu.release_rp()
    left, right = socket.socketpair()
    with left, right:
        sender = _send_in_pieces(left, stream, piece)
        reader = PduReader(right, chunk=1024)  # smaller than some PDUs: the buffer grows
        received = [reader.read() for _ in bodies]
        assert reader.read() == (pdu.RELEASE_RP, bytearray(4))
        with pytest.raises(ConnectionClosed):
            reader.read()
        sender.join()
    assert [kind for kind, _ in received] == [pdu.P_DATA_TF] * len(bodies)
    for (_, body), sent in zip(received, bodies, strict=True):
        [(context_id, _, fragment)] = pdu.iter_pdvs(memoryview(body))
        assert context_id == 1 and bytes(fragment) == sent


def test_a_pdu_body_stays_valid_after_later_reads() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(pdu.p_data(1, b"first") + pdu.p_data(1, b"second"))
        reader = PduReader(right, chunk=64)
        _, first = reader.read()
        reader.read()
        assert bytes(pdu.iter_pdvs(memoryview(first))[0][2]) == b"first"


def test_an_oversized_pdu_is_a_protocol_error() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(bytes([pdu.P_DATA_TF, 0]) + (1 << 30).to_bytes(4, "big"))
        with pytest.raises(pdu.ProtocolError):
            PduReader(right).read()
