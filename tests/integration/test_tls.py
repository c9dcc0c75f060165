"""HTTPS with ``SslEnabled`` + ``SslCertificate`` (one PEM with certificate and key, as Orthanc),
using a self-signed certificate made by the openssl command for this test."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.server_process import ObeliskProcess


class HttpsObeliskProcess(ObeliskProcess):
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"


def self_signed_pem(folder: Path) -> tuple[Path, Path]:
    """(certificate alone, certificate + key in one PEM) for 127.0.0.1, made in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is missing: scripts/setup --system installs it")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    combined = folder / "server.pem"
    combined.write_text(cert.read_text() + key.read_text())
    return cert, combined


def test_https_with_orthancs_certificate_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "tls"
    cert, _ = self_signed_pem(workdir)
    # Relative to the configuration file, as Orthanc resolves it.
    server = HttpsObeliskProcess(workdir, {"SslEnabled": True, "SslCertificate": "server.pem"})
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # ObeliskProcess.start polls with httpx
    with server:
        system = httpx.get(f"{server.url}/system", verify=ssl.create_default_context(cafile=cert))
        assert system.status_code == 200
        assert system.json()["IsHttpServerSecure"] is True
        data = b"over TLS" * 1000
        with httpx.Client(verify=ssl.create_default_context(cafile=cert)) as client:
            assert client.post(f"{server.url}/tools/lookup", content=data).status_code == 200
        trusting_nobody = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, knows no issuer
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{server.url}/system", verify=trusting_nobody)
        with pytest.raises(httpx.TransportError):  # no plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{server.http_port}/system", timeout=5)


def test_a_certificate_without_its_key_stops_the_start(tmp_path: Path) -> None:
    workdir = tmp_path / "bad"
    cert, _ = self_signed_pem(workdir)
    server = HttpsObeliskProcess(workdir, {"SslEnabled": True, "SslCertificate": str(cert)})
    try:
        with pytest.raises(RuntimeError, match="SSL certificate"):
            server.start(timeout=30)
    finally:
        server.stop()


class AuthenticatedHttpsProcess(ObeliskProcess):
    """Polls ``/system`` as Orthanc's default user (httpx takes credentials from the URL)."""

    @property
    def url(self) -> str:
        return f"https://orthanc:orthanc@127.0.0.1:{self.http_port}"


def test_remote_access_turns_authentication_on_over_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "remote"
    cert, pem = self_signed_pem(workdir)
    server = AuthenticatedHttpsProcess(
        workdir,
        {
            "SslEnabled": True,
            "SslCertificate": str(pem),
            "RemoteAccessAllowed": True,  # and no AuthenticationEnabled: Orthanc turns it on
            "Obelisk": {"BindAddress": "127.0.0.1"},  # tests stay on loopback
        },
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with server, httpx.Client(verify=ssl.create_default_context(cafile=cert)) as client:
        base = f"https://127.0.0.1:{server.http_port}"
        refused = client.get(f"{base}/patients")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic ")
        assert client.get(f"{base}/patients", auth=("orthanc", "orthanc")).json() == []
    assert "INSECURE" in server.log_path.read_text()
