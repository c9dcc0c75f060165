"""DICOM TLS contexts from the ``DicomTls*`` options, the client's ``tls_args``, and the server
socket that keeps what is peeked at (over an in-process socket pair, no network)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from obelisk.config import load_settings
from obelisk.dicom.tls import DicomTls, ReplaySocket, accept_tls, tls_args
from obelisk.errors import ConfigurationError, ErrorCode, ObeliskError
from obelisk.services.dicom_client import Peer
from obelisk.services.modalities import modality_json, parse_modality
from tests.support.tls_certs import OPENSSL, Certificates, make_certificates

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def _tls(certs: Certificates, **changes: Any) -> DicomTls:
    base = DicomTls(certs.server_cert, certs.server_key, certs.ca)
    return replace(base, **changes)


# -- options ----------------------------------------------------------------------------------
def test_defaults_are_orthanc_s() -> None:
    settings = load_settings(overrides={})
    assert settings["DicomTlsEnabled"] is False
    assert settings["DicomTlsRemoteCertificateRequired"] is True
    tls = DicomTls.from_settings(settings)
    assert tls == DicomTls()
    assert tls.minimum_protocol_version == 0 and tls.ciphers == ()


def test_relative_paths_are_relative_to_the_configuration_file(tmp_path: Path) -> None:
    config = tmp_path / "orthanc.json"
    config.write_text(
        json.dumps({"DicomTlsCertificate": "tls/obelisk.crt", "DicomTlsPrivateKey": "/k.key"})
    )
    tls = DicomTls.from_settings(load_settings(config))
    assert tls.certificate == tmp_path / "tls" / "obelisk.crt"
    assert tls.private_key == Path("/k.key")
    assert tls.trusted_certificates is None


def test_ciphers_must_be_strings() -> None:
    settings = load_settings(overrides={"DicomTlsCiphersAccepted": [1]})
    with pytest.raises(ConfigurationError, match="DicomTlsCiphersAccepted"):
        DicomTls.from_settings(settings)


# -- the server's context ---------------------------------------------------------------------
def test_server_requires_a_trusted_client_certificate_by_default(certs: Certificates) -> None:
    context = _tls(certs).server_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.sslsocket_class is ReplaySocket


def test_certificate_not_required(certs: Certificates) -> None:
    optional = _tls(certs, remote_certificate_required=False).server_context()
    assert optional.verify_mode is ssl.CERT_OPTIONAL  # checked when one is presented
    anyone = _tls(certs, remote_certificate_required=False, trusted_certificates=None)
    assert anyone.server_context().verify_mode is ssl.CERT_NONE


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        ({"certificate": None}, ErrorCode.ParameterOutOfRange, '"DicomTlsCertificate" and'),
        ({"private_key": None}, ErrorCode.ParameterOutOfRange, '"DicomTlsPrivateKey" are not'),
        ({"certificate": Path("/nope.crt")}, ErrorCode.InexistentFile, '"DicomTlsCertificate"'),
        ({"private_key": Path("/nope.key")}, ErrorCode.InexistentFile, '"DicomTlsPrivateKey"'),
        (
            {"trusted_certificates": Path("/nope.crt")},
            ErrorCode.InexistentFile,
            '"DicomTlsTrustedCertificates" does not exist',
        ),
        (
            {"trusted_certificates": None},
            ErrorCode.InexistentFile,
            '"DicomTlsTrustedCertificates" is not set',
        ),
        ({"minimum_protocol_version": 6}, ErrorCode.ParameterOutOfRange, "0 to 5, not 6"),
        ({"ciphers": ("AES128-GCM-SHA256",)}, ErrorCode.ParameterOutOfRange, "other than 0"),
        (
            {"ciphers": ("NO-SUCH-CIPHER",), "minimum_protocol_version": 4},
            ErrorCode.ParameterOutOfRange,
            "names no cipher",
        ),
    ],
)
def test_errors_name_the_option(
    certs: Certificates, changes: dict[str, Any], code: ErrorCode, message: str
) -> None:
    with pytest.raises(ConfigurationError) as failure:
        _tls(certs, **changes).server_context()
    assert failure.value.code is code
    assert message in str(failure.value)


def test_a_key_that_is_not_the_certificate_s(certs: Certificates) -> None:
    with pytest.raises(ConfigurationError, match="DicomTlsPrivateKey") as failure:
        _tls(certs, private_key=certs.client_key).server_context()
    assert failure.value.code is ErrorCode.BadFileFormat


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (2, ssl.TLSVersion.TLSv1),
        (3, ssl.TLSVersion.TLSv1_1),
        (4, ssl.TLSVersion.TLSv1_2),
        (5, ssl.TLSVersion.TLSv1_3),
    ],
)
def test_minimum_protocol_version(
    certs: Certificates, version: int, expected: ssl.TLSVersion
) -> None:
    context = _tls(certs, minimum_protocol_version=version).server_context()
    assert context.minimum_version is expected


def test_ciphers_accepted(certs: Certificates) -> None:
    tls = _tls(certs, minimum_protocol_version=4, ciphers=("ECDHE-RSA-AES128-GCM-SHA256",))
    names = {c["name"] for c in tls.server_context().get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names == {"ECDHE-RSA-AES128-GCM-SHA256"}


# -- the client -------------------------------------------------------------------------------
def test_client_checks_the_chain_not_the_host_name(certs: Certificates) -> None:
    context = _tls(certs).client_context()
    assert context.check_hostname is False
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_tls_args_only_for_use_dicom_tls(certs: Certificates) -> None:
    peer = Peer("PACS", "10.0.0.20", 104, "OBELISK")
    assert tls_args(_tls(certs), peer) is None
    args = tls_args(_tls(certs), replace(peer, use_tls=True))
    assert args is not None and args[1] == "10.0.0.20"


def test_tls_args_without_certificates_is_orthanc_s_500() -> None:
    with pytest.raises(ObeliskError) as failure:
        tls_args(DicomTls(), Peer("PACS", "h", 104, "OBELISK", use_tls=True))
    assert failure.value.code is ErrorCode.BadSequenceOfCalls
    assert failure.value.http_status == 500
    assert "DicomTlsCertificate" in str(failure.value)


def test_modality_use_dicom_tls_round_trip() -> None:
    modality = parse_modality(
        "pacs", {"AET": "PACS", "Host": "h", "Port": 104, "UseDicomTls": True}
    )
    assert modality.use_dicom_tls is True
    assert modality_json(modality)["UseDicomTls"] is True
    assert parse_modality("ct", ["CT", "h", 104]).use_dicom_tls is False


# -- the server's socket ----------------------------------------------------------------------
def _tls_pair(certs: Certificates) -> tuple[ReplaySocket, ssl.SSLSocket]:
    """A server-side ReplaySocket and its client, over a socket pair."""
    server_end, client_end = socket.socketpair()
    client_context = _tls(certs, certificate=certs.client_cert, private_key=certs.client_key)
    result: dict[str, ssl.SSLSocket] = {}

    def connect() -> None:
        result["client"] = client_context.client_context().wrap_socket(client_end)

    thread = threading.Thread(target=connect)
    thread.start()
    server = accept_tls(server_end, _tls(certs).server_context(), "pair", 10)
    thread.join()
    assert server is not None
    return server, result["client"]


def test_peeked_bytes_are_read_again(certs: Certificates) -> None:
    server, client = _tls_pair(certs)
    with server, client:
        client.sendall(b"\x01\x00\x00\x00\x00\x04abcdEFGH")
        assert server.recv(6, socket.MSG_PEEK | socket.MSG_WAITALL) == b"\x01\x00\x00\x00\x00\x04"
        peeked = server.recv(10, socket.MSG_PEEK | socket.MSG_WAITALL)
        assert peeked == b"\x01\x00\x00\x00\x00\x04abcd"
        assert server.pending() >= 10
        buffer = bytearray(4)
        assert server.recv_into(buffer) == 4 and bytes(buffer) == b"\x01\x00\x00\x00"
        assert server.recv(4) == b"\x00\x04ab"
        assert server.recv(2, socket.MSG_WAITALL) == b"cd"
        assert server.recv(100) == b"EFGH"


def test_a_failed_handshake_closes_the_connection(
    certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    server_end, client_end = socket.socketpair()
    with client_end:
        client_end.sendall(b"\x01\x00\x00\x00\x00\x04abcd")  # an A-ASSOCIATE-RQ, not TLS
        assert accept_tls(server_end, _tls(certs).server_context(), "10.1.2.3", 5) is None
    assert server_end.fileno() == -1
    assert "DICOM TLS handshake with 10.1.2.3 failed" in caplog.text
