"""DICOM TLS: the ``ssl`` contexts of the DICOM server and client, from Orthanc's options.

``DicomTlsEnabled`` makes the server on ``DicomPort`` speak TLS only; a modality's
``UseDicomTls`` makes the client connect to it with TLS. Both sides use ``DicomTlsCertificate``
and ``DicomTlsPrivateKey`` (PEM, two files) as this server's identity, and check the peer's
certificate against ``DicomTlsTrustedCertificates`` (a PEM bundle). Host names are not checked,
as DCMTK (hence Orthanc) does not: a peer is trusted for the chain of its certificate.

Every accepted connection is wrapped by :func:`accept_tls` in its own thread, before the
association request is read. The server's sockets are :class:`ReplaySocket`s, which keep what is
peeked at (``MSG_PEEK`` does not exist for TLS): the request read to choose the receive path is
then read again by the direct path or by pynetdicom.
"""

from __future__ import annotations

import logging
import socket
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from obelisk.config import Settings
from obelisk.errors import ConfigurationError, ErrorCode, ObeliskError
from obelisk.services.dicom_client import Peer

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger("obelisk.dicom")

#: ``DicomTlsMinimumProtocolVersion`` → the lowest protocol accepted (0: BCP 195, TLS 1.2+).
#: SSL 3 (1) is not offered by OpenSSL 3: the lowest version it supports is used instead.
MINIMUM_VERSIONS: dict[int, ssl.TLSVersion] = {
    0: ssl.TLSVersion.TLSv1_2,
    1: ssl.TLSVersion.MINIMUM_SUPPORTED,
    2: ssl.TLSVersion.TLSv1,
    3: ssl.TLSVersion.TLSv1_1,
    4: ssl.TLSVersion.TLSv1_2,
    5: ssl.TLSVersion.TLSv1_3,
}


class ReplaySocket(ssl.SSLSocket):
    """A server-side TLS socket that takes ``MSG_PEEK`` and ``MSG_WAITALL`` as a plain socket
    does: bytes peeked at are kept and returned by the next reads (pynetdicom's included)."""

    _replay: bytes = b""

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        if flags & ~(socket.MSG_PEEK | socket.MSG_WAITALL):
            raise ValueError(f"Unsupported recv() flags on a DICOM TLS socket: {flags}")
        if flags & socket.MSG_WAITALL or (flags & socket.MSG_PEEK and not self._replay):
            self._fill(buflen if flags & socket.MSG_WAITALL else 1)
        if not self._replay:
            return super().recv(buflen)
        data = self._replay[:buflen]
        if not flags & socket.MSG_PEEK:
            self._replay = self._replay[buflen:]
        return data

    def recv_into(self, buffer: WriteableBuffer, nbytes: int | None = None, flags: int = 0) -> int:
        if self._replay and not flags:
            view = memoryview(buffer).cast("B")
            count = min(len(self._replay), nbytes or len(view), len(view))
            view[:count] = self._replay[:count]
            self._replay = self._replay[count:]
            return count
        return super().recv_into(buffer, nbytes, flags)

    def pending(self) -> int:
        """Bytes readable without waiting for the network (pynetdicom polls with it)."""
        return len(self._replay) + super().pending()

    def _fill(self, count: int) -> None:
        while len(self._replay) < count:
            chunk = super().recv(count - len(self._replay))
            if not chunk:
                return
            self._replay += chunk


@dataclass(frozen=True, slots=True)
class DicomTls:
    """The ``DicomTls*`` options; paths are resolved against the configuration file's folder."""

    certificate: Path | None = None
    private_key: Path | None = None
    trusted_certificates: Path | None = None
    remote_certificate_required: bool = True
    minimum_protocol_version: int = 0
    ciphers: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> DicomTls:
        def path(key: str) -> Path | None:
            value = str(settings[key] or "")
            return settings.resolve_path(value) if value else None

        ciphers = settings["DicomTlsCiphersAccepted"]
        if not all(isinstance(c, str) for c in ciphers):
            raise ConfigurationError('"DicomTlsCiphersAccepted" must be a list of strings')
        return cls(
            certificate=path("DicomTlsCertificate"),
            private_key=path("DicomTlsPrivateKey"),
            trusted_certificates=path("DicomTlsTrustedCertificates"),
            remote_certificate_required=bool(settings["DicomTlsRemoteCertificateRequired"]),
            minimum_protocol_version=int(settings["DicomTlsMinimumProtocolVersion"]),
            ciphers=tuple(ciphers),
        )

    def server_context(self) -> ssl.SSLContext:
        """The context of the server (``DicomTlsEnabled``); ``ConfigurationError`` naming the
        option at fault."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.sslsocket_class = ReplaySocket
        self._configure(context, "DICOM TLS is enabled in the DICOM server", server=True)
        return context

    def client_context(self) -> ssl.SSLContext:
        """The context of an association to a modality with ``UseDicomTls``."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # the chain is checked, not the name (as DCMTK)
        self._configure(context, "A modality has UseDicomTls", server=False)
        return context

    def _configure(self, context: ssl.SSLContext, why: str, *, server: bool) -> None:
        if self.certificate is None or self.private_key is None:
            raise ConfigurationError(
                f'{why}, but "DicomTlsCertificate" and "DicomTlsPrivateKey" are not both set'
            )
        certificate = _existing(self.certificate, "DicomTlsCertificate")
        key = _existing(self.private_key, "DicomTlsPrivateKey")
        try:
            # No password prompt on the terminal: an encrypted key fails here instead.
            context.load_cert_chain(certificate, key, password=lambda: b"")
        except OSError as exc:  # ssl.SSLError included
            raise ConfigurationError(
                f'Cannot use "DicomTlsCertificate" {certificate} with "DicomTlsPrivateKey" {key} '
                "(PEM files, the key not encrypted)",
                code=ErrorCode.BadFileFormat,
                details=str(exc),
            ) from exc
        if self.trusted_certificates is not None:
            trusted = _existing(self.trusted_certificates, "DicomTlsTrustedCertificates")
            try:
                context.load_verify_locations(cafile=trusted)
            except OSError as exc:
                raise ConfigurationError(
                    f'Cannot read the certificates of "DicomTlsTrustedCertificates" {trusted}',
                    code=ErrorCode.BadFileFormat,
                    details=str(exc),
                ) from exc
            # A server may let clients come without a certificate (DCMTK's --verify-peer-cert).
            optional = server and not self.remote_certificate_required
            context.verify_mode = ssl.CERT_OPTIONAL if optional else ssl.CERT_REQUIRED
        elif self.remote_certificate_required:
            raise ConfigurationError(
                f'{why}, but "DicomTlsTrustedCertificates" is not set (required while '
                '"DicomTlsRemoteCertificateRequired" is true)',
                code=ErrorCode.InexistentFile,
            )
        else:
            context.verify_mode = ssl.CERT_NONE
        version = MINIMUM_VERSIONS.get(self.minimum_protocol_version)
        if version is None:
            raise ConfigurationError(
                '"DicomTlsMinimumProtocolVersion" must be 0 to 5, not '
                f"{self.minimum_protocol_version}"
            )
        with warnings.catch_warnings():  # TLS 1.0 and 1.1 are deprecated, yet Orthanc's choices
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = version
        if self.ciphers:
            if self.minimum_protocol_version == 0:
                raise ConfigurationError(
                    '"DicomTlsCiphersAccepted" needs a "DicomTlsMinimumProtocolVersion" other '
                    "than 0 (0 uses the ciphers of the BCP 195 profile)"
                )
            try:
                context.set_ciphers(":".join(self.ciphers))
            except ssl.SSLError as exc:
                raise ConfigurationError(
                    '"DicomTlsCiphersAccepted" names no cipher OpenSSL knows',
                    details=str(exc),
                ) from exc


def _existing(path: Path, option: str) -> Path:
    if not path.is_file():
        raise ConfigurationError(
            f'The file of "{option}" does not exist: {path}', code=ErrorCode.InexistentFile
        )
    return path


def accept_tls(
    connection: socket.socket, context: ssl.SSLContext, address: str, timeout: float
) -> ReplaySocket | None:
    """The TLS handshake of an accepted connection (in the association's own thread); ``None``,
    with the connection closed and a log line, when it fails."""
    connection.settimeout(timeout)
    try:
        wrapped = context.wrap_socket(connection, server_side=True)
    except (OSError, ValueError) as exc:
        log.warning("DICOM TLS handshake with %s failed: %s", address, exc)
        connection.close()
        return None
    assert isinstance(wrapped, ReplaySocket)
    return wrapped


def tls_args(tls: DicomTls, peer: Peer) -> tuple[ssl.SSLContext, str] | None:
    """pynetdicom's ``tls_args`` for an association to ``peer`` (``None`` without
    ``UseDicomTls``). Missing options are a 500 "bad sequence of calls" naming them, as in
    Orthanc; a missing or unreadable file keeps its own code."""
    if not peer.use_tls:
        return None
    try:
        return tls.client_context(), peer.host
    except ConfigurationError as exc:
        missing = exc.code is ErrorCode.ParameterOutOfRange
        raise ObeliskError(
            f"DICOM TLS to AET {peer.aet!r} is impossible: {exc.message}",
            code=ErrorCode.BadSequenceOfCalls if missing else exc.code,
            http_status=500,
            details=exc.details,
        ) from exc
