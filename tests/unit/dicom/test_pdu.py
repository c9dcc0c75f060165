"""The hand-written PDUs of the C-STORE receive path, checked against pynetdicom's codecs."""

from __future__ import annotations

import io

from pydicom.filereader import dcmread
from pynetdicom.dsutils import decode
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context

from obelisk.dicom import pdu
from obelisk.dicom.direct_path import serves_directly

CT = "1.2.840.10008.5.1.4.1.1.2"
MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def _request_bytes(*abstracts: str) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "STORESCU"
    primitive.called_ae_title = "OBELISK"
    contexts = []
    for number, abstract in enumerate(abstracts):
        context = build_context(abstract, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
        context.context_id = 2 * number + 1
        contexts.append(context)
    primitive.presentation_context_definition_list = contexts
    maximum = MaximumLengthNotification()
    maximum.maximum_length_received = 32768
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.3"
    primitive.user_information = [maximum, implementation]
    request = A_ASSOCIATE_RQ()
    request.from_primitive(primitive)
    return bytes(request.encode())


def test_parse_request_and_answer_accept() -> None:
    raw = _request_bytes(CT, "1.2.840.10008.1.1")
    assert pdu.header(raw) == (pdu.ASSOCIATE_RQ, len(raw) - 6)
    request = pdu.parse_associate_rq(raw[6:])
    assert (request.calling_aet, request.called_aet, request.max_pdu) == (
        "STORESCU",
        "OBELISK",
        32768,
    )
    assert request.contexts[1] == (CT, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    assert serves_directly(request, frozenset({CT}))
    with_find = pdu.parse_associate_rq(_request_bytes(CT, FIND)[6:])
    assert serves_directly(with_find, frozenset({CT}))
    with_move = pdu.parse_associate_rq(_request_bytes(CT, MOVE)[6:])
    assert not serves_directly(with_move, frozenset({CT}))  # C-MOVE: pynetdicom

    answer = pdu.associate_ac(
        request,
        {1: (0, "1.2.840.10008.1.2.1"), 3: (4, "")},
        max_pdu=16384,
        implementation_uid=pdu.IMPLEMENTATION_CLASS_UID,
        version_name=pdu.IMPLEMENTATION_VERSION,
    )
    decoded = A_ASSOCIATE_AC()
    decoded.decode(answer)
    primitive = decoded.to_primitive()
    assert primitive.calling_ae_title == "STORESCU"
    results = {
        c.context_id: c.result for c in primitive.presentation_context_definition_results_list
    }
    assert results == {1: 0, 3: 4}
    assert primitive.maximum_length_received == 16384


def test_commands_and_file_meta() -> None:
    response = pdu.response_command(0x8001, 7, 0x0000, b"1.2.3\x00", b"4.5.67")
    command = decode(io.BytesIO(response), True, True)
    assert (command.CommandField, command.MessageIDBeingRespondedTo, command.Status) == (
        0x8001,
        7,
        0,
    )
    assert command.AffectedSOPInstanceUID == "4.5.67"
    assert pdu.parse_command(response)[pdu.COMMAND_FIELD] == b"\x01\x80"
    framed = pdu.p_data(5, response)
    ((context_id, control, fragment),) = pdu.iter_pdvs(memoryview(framed)[6:])
    assert (context_id, control, bytes(fragment)) == (5, 3, response)
    meta = pdu.file_meta(CT, "1.2.3.4", "1.2.840.10008.1.2.1", "STORESCU")
    dataset = dcmread(io.BytesIO(meta + b"\x10\x00\x10\x00PN\x04\x00DOE "))
    assert dataset.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4"
    assert dataset.file_meta.SourceApplicationEntityTitle == "STORESCU"
    assert str(dataset.PatientName) == "DOE"
