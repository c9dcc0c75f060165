"""DICOM TLS, both ways, with real TLS on loopback: the server with ``DicomTlsEnabled`` against
pynetdicom and dcmtk clients (on the direct path and on pynetdicom's), and the client
(``/modalities/{id}/echo``, ``/store``, a C-MOVE's sub-association) towards a pynetdicom TLS SCP
for modalities with ``UseDicomTls``. Certificates are made for the test (``tests/support``).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation

from tests.integration.dicom.conftest import AET, dcmtk, start_server
from tests.integration.server_process import ObeliskProcess
from tests.support.tls_certs import OPENSSL, Certificates, make_certificates

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")

VERIFICATION = "1.2.840.10008.1.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def _tls_config(certs: Certificates, **extra: Any) -> dict[str, Any]:
    return {
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": str(certs.server_cert),
        "DicomTlsPrivateKey": str(certs.server_key),
        "DicomTlsTrustedCertificates": str(certs.ca),
        **extra,
    }


class TlsPeer:
    """A pynetdicom storage/verification SCP (AET ``PEER``) that speaks TLS only and requires a
    client certificate signed by the test CA."""

    def __init__(self, certs: Certificates, port: int) -> None:
        self.received: list[pydicom.Dataset] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs.server_cert, certs.server_key)
        context.load_verify_locations(certs.ca)
        context.verify_mode = ssl.CERT_REQUIRED
        self.ae = AE(ae_title="PEER")
        self.ae.add_supported_context(VERIFICATION)
        self.ae.add_supported_context(CT_STORAGE)
        self.server = self.ae.start_server(
            ("127.0.0.1", port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
            ssl_context=context,
        )

    def _on_store(self, event: evt.Event) -> int:
        self.received.append(event.dataset)
        return 0


@pytest.fixture(scope="module")
def tls_peer(certs: Certificates, peer_port: int) -> Iterator[TlsPeer]:
    peer = TlsPeer(certs, peer_port)
    yield peer
    assert peer.server is not None
    peer.server.shutdown()


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, certs: Certificates, peer_port: int
) -> Iterator[ObeliskProcess]:
    """TLS only on DicomPort (default: direct path for store/echo/find); ``PEER`` (TLS) and
    ``PLAIN`` (the same peer without ``UseDicomTls``) are known."""
    process = start_server(
        tmp_path_factory.mktemp("tls-server"),
        _tls_config(
            certs,
            DicomAlwaysAllowFind=True,
            DicomAlwaysAllowGet=True,
            DicomAlwaysAllowMove=True,
            DicomModalities={
                "peer": {
                    "AET": "PEER",
                    "Host": "127.0.0.1",
                    "Port": peer_port,
                    "UseDicomTls": True,
                },
                "plain": ["PEER", "127.0.0.1", peer_port],
            },
        ),
    )
    yield process
    process.stop()


def _client_context(certs: Certificates, identity: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(certs.ca)
    if identity is not None:
        context.load_cert_chain(*identity)
    return context


def _associate(
    server: ObeliskProcess,
    contexts: list[str],
    tls: ssl.SSLContext | None,
    *,
    aet: str = "TLSCLIENT",
) -> Association:
    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    for uid in contexts:
        ae.add_requested_context(uid)
    return ae.associate(
        "127.0.0.1",
        int(server.config["DicomPort"]),
        ae_title=AET,
        tls_args=(tls, "localhost") if tls is not None else None,
    )


def _count(server: ObeliskProcess) -> int:
    return int(httpx.get(f"{server.url}/statistics").json()["CountInstances"])


def _echo_with(server: ObeliskProcess, tls: ssl.SSLContext | None) -> bool:
    """Whether a C-ECHO succeeds (a TLS 1.3 client may learn that its certificate was refused
    only when it reads the answer to its association request)."""
    assoc = _associate(server, [VERIFICATION], tls)
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return int(status.get("Status", -1)) == 0


def _echo_ok(server: ObeliskProcess, certs: Certificates) -> bool:
    return _echo_with(server, _client_context(certs, (certs.client_cert, certs.client_key)))


# -- the server -------------------------------------------------------------------------------
def test_pynetdicom_store_echo_find_over_tls(
    tls_server: ObeliskProcess, certs: Certificates, dicom_files: list[Path]
) -> None:
    tls = _client_context(certs, (certs.client_cert, certs.client_key))
    dataset = pydicom.dcmread(dicom_files[0])
    assoc = _associate(tls_server, [CT_STORAGE, VERIFICATION, STUDY_ROOT_FIND], tls)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assert assoc.send_c_store(dataset).Status == 0
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = dataset.StudyInstanceUID
    answers = [found for status, found in assoc.send_c_find(query, STUDY_ROOT_FIND) if found]
    assoc.release()
    assert [str(a.StudyInstanceUID) for a in answers] == [dataset.StudyInstanceUID]
    instances = httpx.post(
        f"{tls_server.url}/tools/lookup", content=str(dataset.SOPInstanceUID)
    ).json()
    assert len(instances) == 1
    origin = httpx.get(f"{tls_server.url}{instances[0]['Path']}/metadata?expand").json()
    assert origin["RemoteAET"] == "TLSCLIENT"


def test_dcmtk_storescu_and_findscu_over_tls(
    tls_server: ObeliskProcess, certs: Certificates, dicom_files: list[Path]
) -> None:
    port = str(tls_server.config["DicomPort"])
    tls = ["+tls", str(certs.client_key), str(certs.client_cert), "+cf", str(certs.ca)]
    done = dcmtk("storescu", *tls, "-aet", "DCMTK", "-aec", AET, "127.0.0.1", port,
                 *map(str, dicom_files[1:3]))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert httpx.post(
        f"{tls_server.url}/tools/lookup",
        content=str(pydicom.dcmread(dicom_files[2]).SOPInstanceUID),
    ).json()
    done = dcmtk("echoscu", *tls, "-aet", "DCMTK", "-aec", AET, "127.0.0.1", port)
    assert done.returncode == 0, done.stderr
    # Without TLS, dcmtk's association fails.
    done = dcmtk("echoscu", "-to", "5", "-aet", "DCMTK", "-aec", AET, "127.0.0.1", port)
    assert done.returncode != 0


def test_c_get_over_tls_goes_through_pynetdicom(
    tls_server: ObeliskProcess, certs: Certificates, dicom_files: list[Path]
) -> None:
    """C-GET associations are handed to pynetdicom: the request read over TLS is replayed."""
    tls = _client_context(certs, (certs.client_cert, certs.client_key))
    dataset = pydicom.dcmread(dicom_files[3])
    store = _associate(tls_server, [CT_STORAGE], tls)
    assert store.send_c_store(dataset).Status == 0
    store.release()
    received: list[pydicom.Dataset] = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset)
        return 0

    ae = AE(ae_title="GETTER")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(STUDY_ROOT_GET)
    ae.add_requested_context(CT_STORAGE)
    role = SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid = CT_STORAGE
    role.scu_role, role.scp_role = False, True
    assoc = ae.associate(
        "127.0.0.1",
        int(tls_server.config["DicomPort"]),
        ae_title=AET,
        ext_neg=[role],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
        tls_args=(tls, "localhost"),
    )
    assert assoc.is_established
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.SeriesInstanceUID = dataset.SeriesInstanceUID
    statuses = [int(s.Status) for s, _ in assoc.send_c_get(query, STUDY_ROOT_GET) if s]
    assoc.release()
    assert statuses[-1] == 0
    assert dataset.SOPInstanceUID in {str(d.SOPInstanceUID) for d in received}


@pytest.mark.parametrize("who", ["plain TCP", "no certificate", "untrusted certificate"])
def test_refused_clients_do_not_stop_the_server(
    tls_server: ObeliskProcess, certs: Certificates, who: str
) -> None:
    tls = {
        "plain TCP": None,
        "no certificate": _client_context(certs, None),
        "untrusted certificate": _client_context(certs, (certs.rogue_cert, certs.rogue_key)),
    }[who]
    assert not _echo_with(tls_server, tls)
    assert _echo_ok(tls_server, certs)
    log = tls_server.log_path.read_text()
    assert "DICOM TLS handshake with 127.0.0.1 failed" in log


def test_certificate_not_required_and_pynetdicom_only(
    tmp_path: Path, certs: Certificates, dicom_files: list[Path]
) -> None:
    """``DicomTlsRemoteCertificateRequired: false``: a client without a certificate may store
    (every association on pynetdicom here); one with an untrusted certificate still may not."""
    config = _tls_config(certs, DicomTlsRemoteCertificateRequired=False)
    server = start_server(tmp_path, {**config, "Obelisk": {"DicomStoreFastPath": False}})
    try:
        assoc = _associate(server, [CT_STORAGE], _client_context(certs, None))
        assert assoc.is_established
        assert assoc.send_c_store(pydicom.dcmread(dicom_files[4])).Status == 0
        assoc.release()
        assert _count(server) == 1
        rogue = _client_context(certs, (certs.rogue_cert, certs.rogue_key))
        assert not _echo_with(server, rogue)
        assert _echo_ok(server, certs)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DicomTlsCertificate": "missing.crt"}, 'The file of "DicomTlsCertificate" does not'),
        ({"DicomTlsPrivateKey": ""}, '"DicomTlsCertificate" and "DicomTlsPrivateKey" are not'),
        ({"DicomTlsTrustedCertificates": ""}, '"DicomTlsTrustedCertificates" is not set'),
        ({"DicomTlsMinimumProtocolVersion": 9}, '"DicomTlsMinimumProtocolVersion" must be'),
    ],
)
def test_startup_errors_name_the_option(
    tmp_path: Path, certs: Certificates, change: dict[str, Any], message: str
) -> None:
    server = ObeliskProcess(tmp_path, {"DicomAet": AET, **_tls_config(certs, **change)})
    with pytest.raises(RuntimeError, match="exited early") as failure:
        server.start()
    assert message in str(failure.value)


# -- the client -------------------------------------------------------------------------------
def test_modalities_expand_shows_use_dicom_tls(tls_server: ObeliskProcess) -> None:
    modalities = httpx.get(f"{tls_server.url}/modalities?expand").json()
    assert modalities["peer"]["UseDicomTls"] is True
    assert modalities["plain"]["UseDicomTls"] is False


def test_echo_and_store_to_a_tls_modality(
    tls_server: ObeliskProcess, tls_peer: TlsPeer, dicom_files: list[Path]
) -> None:
    answer = httpx.post(f"{tls_server.url}/modalities/peer/echo", json={}, timeout=30)
    assert answer.status_code == 200, answer.text
    # The same peer without UseDicomTls: a plain association, which the TLS peer refuses.
    answer = httpx.post(f"{tls_server.url}/modalities/plain/echo", json={"Timeout": 3}, timeout=30)
    assert answer.status_code == 500
    uploaded = httpx.post(f"{tls_server.url}/instances", content=dicom_files[5].read_bytes())
    instance = uploaded.json()["ID"]
    answer = httpx.post(
        f"{tls_server.url}/modalities/peer/store",
        json={"Resources": [instance], "Synchronous": True},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["FailedInstancesCount"] == 0
    sop = pydicom.dcmread(dicom_files[5]).SOPInstanceUID
    assert sop in {str(d.SOPInstanceUID) for d in tls_peer.received}


def test_echo_of_an_unregistered_tls_modality(
    tls_server: ObeliskProcess, tls_peer: TlsPeer, peer_port: int
) -> None:
    body = {"AET": "PEER", "Host": "127.0.0.1", "Port": peer_port, "UseDicomTls": True}
    answer = httpx.post(f"{tls_server.url}/tools/dicom-echo", json=body, timeout=30)
    assert answer.status_code == 200, answer.text


def test_c_move_sub_association_uses_tls(
    tls_server: ObeliskProcess, tls_peer: TlsPeer, certs: Certificates, dicom_files: list[Path]
) -> None:
    """A C-MOVE to ``PEER`` (a modality with ``UseDicomTls``) sends over TLS."""
    dataset = pydicom.dcmread(dicom_files[0])  # stored by the first test, or stored here
    httpx.post(f"{tls_server.url}/instances", content=dicom_files[0].read_bytes())
    tls = _client_context(certs, (certs.client_cert, certs.client_key))
    assoc = _associate(tls_server, [STUDY_ROOT_MOVE], tls)
    assert assoc.is_established
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.SeriesInstanceUID = dataset.SeriesInstanceUID
    statuses = [int(s.Status) for s, _ in assoc.send_c_move(query, "PEER", STUDY_ROOT_MOVE) if s]
    assoc.release()
    assert statuses[-1] == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if dataset.SOPInstanceUID in {str(d.SOPInstanceUID) for d in tls_peer.received}:
            break
        time.sleep(0.05)
    assert dataset.SOPInstanceUID in {str(d.SOPInstanceUID) for d in tls_peer.received}


def test_scu_without_own_certificate_fails_with_the_option_named(
    tmp_path: Path, tls_peer: TlsPeer, peer_port: int
) -> None:
    modality = {"AET": "PEER", "Host": "127.0.0.1", "Port": peer_port, "UseDicomTls": True}
    server = start_server(tmp_path, {"DicomModalities": {"peer": modality}})
    try:
        answer = httpx.post(f"{server.url}/modalities/peer/echo", json={}, timeout=30)
    finally:
        server.stop()
    assert answer.status_code == 500
    assert answer.json()["OrthancStatus"] == 6  # bad sequence of calls, as Orthanc answers
    assert "DicomTlsCertificate" in answer.json()["Details"]
