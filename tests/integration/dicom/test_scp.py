"""The DICOM server against real peers: dcmtk's tools and pynetdicom."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

import httpx
import pydicom
from pynetdicom import AE

from tests.integration.dicom.conftest import AET, DCMTK, ENV, dcmtk, start_server
from tests.integration.server_process import ObeliskProcess

STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def _port(server: ObeliskProcess) -> str:
    return str(server.config["DicomPort"])


def _store(server: ObeliskProcess, files: list[Path], *options: str, aet: str = "PEER") -> None:
    args = [*options, "-aet", aet, "-aec", AET, "127.0.0.1", _port(server), *map(str, files)]
    done = dcmtk("storescu", *args)
    assert done.returncode == 0, done.stderr


def _answers(output: str) -> list[dict[str, str]]:
    """``findscu -v`` output → the response identifiers (tag → value)."""
    answers: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in output.splitlines():
        text = line[3:] if line[1:3] == ": " else line
        if text.startswith("Find Response:"):
            current = {}
            answers.append(current)
        elif current is not None and text.startswith("("):
            tag, _, rest = text.partition(" ")
            value = rest.split("[", 1)[1].split("]", 1)[0] if "[" in rest else ""
            current[tag[1:10].upper()] = value.strip(" \x00")
    return [answer for answer in answers if answer]


def _find(server: ObeliskProcess, model: str, *keys: str) -> list[dict[str, str]]:
    args = [arg for key in keys for arg in ("-k", key)]
    done = dcmtk(
        "findscu", "-v", "-aet", "PEER", "-aec", AET, model, *args, "127.0.0.1", _port(server)
    )
    assert done.returncode == 0, done.stderr
    return _answers(done.stdout + done.stderr)


def test_echo_store_and_origin(server: ObeliskProcess, dicom_files: list[Path]) -> None:
    assert dcmtk("echoscu", "-aet", "PEER", "-aec", AET, "127.0.0.1", _port(server)).returncode == 0
    _store(server, dicom_files)
    assert httpx.get(f"{server.url}/statistics").json()["CountInstances"] == len(dicom_files)
    sop = pydicom.dcmread(dicom_files[0]).SOPInstanceUID
    found = httpx.post(
        f"{server.url}/tools/find", json={"Level": "Instance", "Query": {"SOPInstanceUID": sop}}
    ).json()
    metadata = httpx.get(f"{server.url}/instances/{found[0]}/metadata?expand").json()
    assert metadata["Origin"] == "DicomProtocol"
    assert metadata["RemoteAET"] == "PEER" and metadata["CalledAET"] == AET
    assert metadata["RemoteIP"] == "127.0.0.1"
    # the dataset is stored as received: same bytes after the file meta group
    stored = httpx.get(f"{server.url}/instances/{found[0]}/file").content
    original = dicom_files[0].read_bytes()
    assert stored[_dataset_offset(stored) :] == original[_dataset_offset(original) :]


def _dataset_offset(data: bytes) -> int:
    return 144 + int.from_bytes(data[140:144], "little")


def test_find_at_every_level(server: ObeliskProcess, dicom_files: list[Path]) -> None:
    _store(server, dicom_files)
    first = pydicom.dcmread(dicom_files[0])
    patients = _find(
        server,
        "-P",
        "QueryRetrieveLevel=PATIENT",
        "PatientID",
        "PatientName",
        "NumberOfPatientRelatedInstances",
    )
    assert len(patients) == 2
    assert {p["0020,1204"] for p in patients} == {"3"}
    studies = _find(
        server,
        "-S",
        "QueryRetrieveLevel=STUDY",
        f"PatientID={first.PatientID}",
        "StudyInstanceUID",
        "ModalitiesInStudy",
    )
    assert [(s["0020,000D"], s["0008,0061"]) for s in studies] == [(first.StudyInstanceUID, "CT")]
    series = _find(
        server,
        "-S",
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={first.StudyInstanceUID}",
        "SeriesInstanceUID",
        "Modality",
    )
    assert [s["0020,000E"] for s in series] == [first.SeriesInstanceUID]
    images = _find(
        server,
        "-S",
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={first.StudyInstanceUID}",
        f"SeriesInstanceUID={first.SeriesInstanceUID}",
        "SOPInstanceUID",
        "InstanceNumber",
    )
    assert len(images) == 3 and first.SOPInstanceUID in {i["0008,0018"] for i in images}
    wildcard = _find(server, "-P", "QueryRetrieveLevel=PATIENT", "PatientName=doe*", "PatientID")
    assert [p["0010,0020"] for p in wildcard] == [str(first.PatientID)]


def test_move_to_a_storescp_and_unknown_destination(
    server: ObeliskProcess, dicom_files: list[Path], peer_port: int, tmp_path: Path
) -> None:
    _store(server, dicom_files)
    study = str(pydicom.dcmread(dicom_files[0]).StudyInstanceUID)
    received = tmp_path / "received"
    received.mkdir()
    storescp = subprocess.Popen(
        [str(DCMTK / "storescp"), "-aet", "PEER", "-od", str(received), str(peer_port)], env=ENV
    )
    try:
        time.sleep(0.5)
        done = dcmtk(
            "movescu",
            "-aet",
            "PEER",
            "-aec",
            AET,
            "-aem",
            "PEER",
            "-S",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study}",
            "127.0.0.1",
            _port(server),
        )
        assert done.returncode == 0, done.stderr
        assert len(list(received.iterdir())) == 3
    finally:
        storescp.terminate()
        storescp.wait(timeout=10)
    # pynetdicom as the peer: an unknown destination AET is answered 0xA801
    ae = AE(ae_title="PEER")
    ae.add_requested_context(STUDY_ROOT_MOVE)
    assoc = ae.associate("127.0.0.1", int(_port(server)), ae_title=AET)
    assert assoc.is_established
    identifier = pydicom.Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study
    statuses = [int(s.Status) for s, _ in assoc.send_c_move(identifier, "NOBODY", STUDY_ROOT_MOVE)]
    assoc.release()
    assert statuses[-1] == 0xA801


def test_get(server: ObeliskProcess, dicom_files: list[Path], tmp_path: Path) -> None:
    _store(server, dicom_files)
    series = str(pydicom.dcmread(dicom_files[0]).SeriesInstanceUID)
    done = dcmtk(
        "getscu",
        "-aet",
        "PEER",
        "-aec",
        AET,
        "-S",
        "-od",
        str(tmp_path),
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"SeriesInstanceUID={series}",
        "127.0.0.1",
        _port(server),
    )
    assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.iterdir())) == 3


def test_pynetdicom_peer_stores_and_finds(server: ObeliskProcess, dicom_files: list[Path]) -> None:
    dataset = pydicom.dcmread(dicom_files[-1])
    ae = AE(ae_title="PEER")
    ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    ae.add_requested_context(STUDY_ROOT_FIND)
    assoc = ae.associate("127.0.0.1", int(_port(server)), ae_title=AET)
    assert assoc.is_established
    assert assoc.send_c_store(dataset).Status == 0
    assert assoc.send_c_store(dataset).Status == 0  # already stored: still a success
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = dataset.StudyInstanceUID
    query.PatientName = ""
    answers = [found for _, found in assoc.send_c_find(query, STUDY_ROOT_FIND) if found]
    assoc.release()
    assert [str(a.PatientName) for a in answers] == [str(dataset.PatientName)]


def test_concurrent_associations(tmp_path: Path, dicom_files: list[Path]) -> None:
    """Two storescu at once, on a fresh server: every instance is stored once."""
    fresh = start_server(tmp_path / "fresh", {})
    try:
        senders = [
            subprocess.Popen(
                [str(DCMTK / "storescu"), "-aet", f"SCU{n}", "-aec", AET, "127.0.0.1", _port(fresh)]
                + [str(f) for f in dicom_files[n::2]],
                env=ENV,
            )
            for n in range(2)
        ]
        assert [sender.wait(timeout=60) for sender in senders] == [0, 0]
        statistics = httpx.get(f"{fresh.url}/statistics").json()
        assert statistics["CountInstances"] == len(dicom_files)
    finally:
        fresh.stop()


def test_compressed_instance_is_stored_as_received(server: ObeliskProcess, tmp_path: Path) -> None:
    """A JPEG-encapsulated instance keeps its transfer syntax and its bytes (never decoded)."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    from tests.dicom_factory import make_dicom

    dataset = pydicom.dcmread(io.BytesIO(make_dicom(sop_uid="1.2.3.4.99", study_uid="1.2.3.99")))
    dataset.PixelData = encapsulate([b"\xff\xd8 not really a JPEG \xff\xd9"])
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    path = tmp_path / "jpeg.dcm"
    dataset.save_as(path, enforce_file_format=True)
    _store(server, [path], "-xy")  # propose JPEG baseline
    found = httpx.post(
        f"{server.url}/tools/find",
        json={"Level": "Instance", "Query": {"SOPInstanceUID": "1.2.3.4.99"}},
    ).json()
    stored = httpx.get(f"{server.url}/instances/{found[0]}/file").content
    original = path.read_bytes()
    assert stored[_dataset_offset(stored) :] == original[_dataset_offset(original) :]
    metadata = httpx.get(f"{server.url}/instances/{found[0]}/metadata/TransferSyntax").text
    assert metadata == JPEGBaseline8Bit
