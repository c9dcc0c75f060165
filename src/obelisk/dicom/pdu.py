"""The few DICOM upper-layer PDUs and DIMSE command sets the C-STORE receive path needs (PS3.8 9.3,
PS3.7 E), parsed and built by hand: no objects per PDU, memoryviews over the received bytes.

Command sets are implicit VR little endian group 0000 elements; only the fields of C-STORE and
C-ECHO are read or written.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

ASSOCIATE_RQ = 0x01
ASSOCIATE_AC = 0x02
ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
RELEASE_RQ = 0x05
RELEASE_RP = 0x06
ABORT = 0x07

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
_HEADER = struct.Struct(">BxI")
_ITEM = struct.Struct(">BxH")
_PDV = struct.Struct(">IBB")
_ELEMENT = struct.Struct("<HHI")

# command set tags (group 0000), as element numbers
AFFECTED_SOP_CLASS = 0x0002
COMMAND_FIELD = 0x0100
MESSAGE_ID = 0x0110
MESSAGE_ID_RESPONDED = 0x0120
DATA_SET_TYPE = 0x0800
STATUS = 0x0900
AFFECTED_SOP_INSTANCE = 0x1000
MOVE_ORIGINATOR_AET = 0x1030
C_STORE_RQ = 0x0001
C_ECHO_RQ = 0x0030
NO_DATA_SET = 0x0101


class ProtocolError(Exception):
    """A PDU that does not follow PS3.8: the association is aborted."""


@dataclass
class AssociateRequest:
    called_aet: str
    calling_aet: str
    #: context id → (abstract syntax, proposed transfer syntaxes)
    contexts: dict[int, tuple[str, list[str]]] = field(default_factory=dict)
    max_pdu: int = 0
    #: User information sub-item types beyond max length / implementation (0x51, 0x52, 0x55).
    extra_user_items: set[int] = field(default_factory=set)


def header(data: bytes | bytearray) -> tuple[int, int]:
    """(PDU type, length of the rest) from the first six bytes."""
    return _HEADER.unpack_from(data)


def _uid(raw: bytes | memoryview) -> str:
    return bytes(raw).rstrip(b"\x00 ").decode("ascii", "replace")


def _aet(raw: bytes | memoryview) -> str:
    return bytes(raw).decode("ascii", "replace").strip()


def parse_associate_rq(body: bytes) -> AssociateRequest:
    """``body``: the PDU after its six-byte header."""
    if len(body) < 68:
        raise ProtocolError("A-ASSOCIATE-RQ too short")
    request = AssociateRequest(called_aet=_aet(body[4:20]), calling_aet=_aet(body[20:36]))
    view = memoryview(body)
    offset = 68
    while offset + 4 <= len(body):
        item_type, length = _ITEM.unpack_from(body, offset)
        item = view[offset + 4 : offset + 4 + length]
        offset += 4 + length
        if item_type == 0x20:
            request.contexts[item[0]] = _presentation_context(item)
        elif item_type == 0x50:
            _user_information(item, request)
    return request


def _presentation_context(item: memoryview) -> tuple[str, list[str]]:
    abstract = ""
    syntaxes: list[str] = []
    offset = 4
    while offset + 4 <= len(item):
        sub_type, length = _ITEM.unpack_from(item, offset)
        value = item[offset + 4 : offset + 4 + length]
        offset += 4 + length
        if sub_type == 0x30:
            abstract = _uid(value)
        elif sub_type == 0x40:
            syntaxes.append(_uid(value))
    return abstract, syntaxes


def _user_information(item: memoryview, request: AssociateRequest) -> None:
    offset = 0
    while offset + 4 <= len(item):
        sub_type, length = _ITEM.unpack_from(item, offset)
        if sub_type == 0x51 and length == 4:
            request.max_pdu = struct.unpack_from(">I", item, offset + 4)[0]
        elif sub_type not in (0x52, 0x55):
            request.extra_user_items.add(sub_type)
        offset += 4 + length


def _item(item_type: int, value: bytes) -> bytes:
    return _ITEM.pack(item_type, len(value)) + value


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return _HEADER.pack(pdu_type, len(body)) + body


def associate_ac(
    request: AssociateRequest,
    results: dict[int, tuple[int, str]],
    *,
    max_pdu: int,
    implementation_uid: str,
    version_name: str,
) -> bytes:
    """``results``: context id → (result: 0 accepted, 3 abstract / 4 transfer syntax refused,
    transfer syntax)."""
    fixed = (
        b"\x00\x01\x00\x00"
        + request.called_aet.encode("ascii").ljust(16)[:16]
        + request.calling_aet.encode("ascii").ljust(16)[:16]
        + bytes(32)
    )
    items = [_item(0x10, APPLICATION_CONTEXT.encode("ascii"))]
    for context_id, (result, syntax) in sorted(results.items()):
        sub = _item(0x40, syntax.encode("ascii")) if syntax else b""
        items.append(_item(0x21, bytes((context_id, 0, result, 0)) + sub))
    user = (
        _item(0x51, struct.pack(">I", max_pdu))
        + _item(0x52, implementation_uid.encode("ascii"))
        + _item(0x55, version_name.encode("ascii"))
    )
    items.append(_item(0x50, user))
    return _pdu(ASSOCIATE_AC, fixed + b"".join(items))


def associate_rj(result: int, source: int, reason: int) -> bytes:
    return _pdu(ASSOCIATE_RJ, bytes((0, result, source, reason)))


def release_rp() -> bytes:
    return _pdu(RELEASE_RP, bytes(4))


def abort(source: int = 2, reason: int = 0) -> bytes:
    return _pdu(ABORT, bytes((0, 0, source, reason)))


def iter_pdvs(body: memoryview) -> list[tuple[int, int, memoryview]]:
    """(context id, message control header, fragment) of each PDV of a P-DATA-TF body."""
    pdvs = []
    offset = 0
    while offset + 6 <= len(body):
        length, context_id, control = _PDV.unpack_from(body, offset)
        if length < 2 or offset + 4 + length > len(body):
            raise ProtocolError("Bad PDV length")
        pdvs.append((context_id, control, body[offset + 6 : offset + 4 + length]))
        offset += 4 + length
    return pdvs


def parse_command(data: bytes) -> dict[int, bytes]:
    """Group 0000 elements (element number → raw value) of an implicit VR LE command set."""
    fields: dict[int, bytes] = {}
    offset = 0
    while offset + 8 <= len(data):
        group, element, length = _ELEMENT.unpack_from(data, offset)
        fields[element] = data[offset + 8 : offset + 8 + length] if group == 0 else b""
        offset += 8 + length
    return fields


def us(value: bytes) -> int:
    return int.from_bytes(value[:2], "little")


def uid_text(value: bytes) -> str:
    return _uid(value)


def _element(element: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00"
    return _ELEMENT.pack(0, element, len(value)) + value


def response_command(
    command_field: int,
    message_id: int,
    status: int,
    sop_class: bytes,
    sop_instance: bytes | None,
    *,
    dataset: bool = False,
) -> bytes:
    """A C-STORE/C-ECHO/C-FIND-RSP command set, with its group length."""
    body = (
        _element(AFFECTED_SOP_CLASS, sop_class)
        + _element(COMMAND_FIELD, struct.pack("<H", command_field))
        + _element(MESSAGE_ID_RESPONDED, struct.pack("<H", message_id))
        + _element(DATA_SET_TYPE, struct.pack("<H", 0x0001 if dataset else NO_DATA_SET))
        + _element(STATUS, struct.pack("<H", status))
        + (_element(AFFECTED_SOP_INSTANCE, sop_instance) if sop_instance is not None else b"")
    )
    return _ELEMENT.pack(0, 0, 4) + struct.pack("<I", len(body)) + body


def p_data(context_id: int, data: bytes, *, command: bool = True, last: bool = True) -> bytes:
    """One P-DATA-TF holding one PDV (command sets are far below any PDU size)."""
    control = (0x01 if command else 0x00) | (0x02 if last else 0x00)
    return _pdu(P_DATA_TF, _PDV.pack(len(data) + 2, context_id, control) + data)


def file_meta(sop_class: str, sop_instance: str, syntax: str, source_aet: str) -> bytes:
    """Preamble, ``DICM`` and an explicit VR LE group 0002 for the received dataset."""

    def element(tag: int, vr: bytes, value: bytes, pad: bytes = b"\x00") -> bytes:
        if len(value) % 2:
            value += pad
        if vr == b"OB":
            return (
                struct.pack("<HH", 2, tag)
                + vr
                + b"\x00\x00"
                + struct.pack("<I", len(value))
                + value
            )
        return struct.pack("<HH", 2, tag) + vr + struct.pack("<H", len(value)) + value

    body = (
        element(0x0001, b"OB", b"\x00\x01")
        + element(0x0002, b"UI", sop_class.encode("ascii"))
        + element(0x0003, b"UI", sop_instance.encode("ascii"))
        + element(0x0010, b"UI", syntax.encode("ascii"))
        + element(0x0012, b"UI", IMPLEMENTATION_CLASS_UID.encode("ascii"))
        + element(0x0013, b"SH", IMPLEMENTATION_VERSION.encode("ascii"), b" ")
        + element(0x0016, b"AE", source_aet.encode("ascii", "replace"), b" ")
    )
    group_length = struct.pack("<HH", 2, 0) + b"UL" + struct.pack("<HI", 4, len(body))
    return bytes(128) + b"DICM" + group_length + body


#: Obelisk's implementation identification (a 2.25 UUID-derived UID).
IMPLEMENTATION_CLASS_UID = "2.25.97361508291658735232312387410203912287"
IMPLEMENTATION_VERSION = "OBELISK"
