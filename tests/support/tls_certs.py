"""Throw-away X.509 material for DICOM TLS tests, made with the ``openssl`` command line.

    certs = make_certificates(tmp_path)
    certs.server_cert, certs.server_key   # signed by certs.ca (CN=server, SAN localhost/127.0.0.1)
    certs.client_cert, certs.client_key   # signed by certs.ca (CN=client)
    certs.rogue_cert, certs.rogue_key     # self-signed: trusted by nobody

RSA 2048 keys, valid two days; nothing leaves ``directory``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None, "openssl is not installed"
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _self_signed(directory: Path, name: str, subject: str, *extensions: str) -> None:
    extra = [arg for ext in extensions for arg in ("-addext", ext)]
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", subject, *extra,
        cwd=directory,
    )  # fmt: skip


def _signed(directory: Path, name: str) -> None:
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
        "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    (directory / f"{name}.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
    )
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    _self_signed(
        directory,
        "ca",
        "/CN=Obelisk test CA",
        "basicConstraints=critical,CA:TRUE",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    _signed(directory, "server")
    _signed(directory, "client")
    _self_signed(directory, "rogue", "/CN=rogue")
    return Certificates(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        rogue_cert=directory / "rogue.crt",
        rogue_key=directory / "rogue.key",
    )
