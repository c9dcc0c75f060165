"""Transfer syntaxes of stored files: transcoding whole instances, and the syntax a C-STORE sends.

:func:`transcode` goes through pydicom and its pixel plugins (pylibjpeg: libjpeg, openjpeg, rle);
what they cannot produce is :class:`NotAcceptable` (406 for DICOMweb, where the client may ask
for something else). :class:`SendTranscoding` holds Orthanc 1.10.1's rules for outgoing C-STORE
(store jobs, ``store-straight``, C-MOVE and C-GET sub-operations): an instance goes in its stored
syntax when the peer accepted it; otherwise, unless ``TranscodeDicomProtocol`` or the modality's
``AllowTranscoding`` forbids it, in ``DicomScuPreferredTransferSyntax`` when the peer accepted
that one, else in an uncompressed syntax it accepted.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import get_encoder
from pydicom.uid import UID

from obelisk.config import Settings
from obelisk.errors import BadFileFormat, ConfigurationError, ErrorCode, ObeliskError

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
UNCOMPRESSED = frozenset(
    {
        EXPLICIT_VR_LITTLE_ENDIAN,
        IMPLICIT_VR_LITTLE_ENDIAN,
        DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
        EXPLICIT_VR_BIG_ENDIAN,
    }
)


class NotAcceptable(ObeliskError):
    default_code = ErrorCode.NotAcceptable


def is_uncompressed(transfer_syntax: str) -> bool:
    return transfer_syntax in UNCOMPRESSED


def read(data: bytes, *, stop_before_pixels: bool = False) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=stop_before_pixels)
    except Exception as exc:
        raise BadFileFormat("Cannot parse a stored DICOM file") from exc


def _plugin_available(find: Callable[[UID], Any], transfer_syntax: str) -> bool:
    """Whether pydicom has a working decoder/encoder (``find``) for a transfer syntax."""
    try:
        return bool(find(UID(transfer_syntax)).is_available)
    except (NotImplementedError, ValueError):
        return False


def can_decode(transfer_syntax: str) -> bool:
    return is_uncompressed(transfer_syntax) or _plugin_available(get_decoder, transfer_syntax)


def can_produce(source: str, target: str) -> bool:
    """Whether :func:`transcode` can turn ``source`` into ``target`` (checked before streaming)."""
    if source == target:
        return True
    if is_uncompressed(target):
        raw = target in (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)
        return raw and can_decode(source)
    return can_decode(source) and _plugin_available(get_encoder, target)


def transcode(data: bytes, source: str, target: str) -> bytes:
    """The same instance in transfer syntax ``target`` (``data`` itself when nothing changes)."""
    if source == target:
        return data
    ds = read(data)
    convert(ds, source, target)
    out = io.BytesIO()
    try:
        ds.save_as(out, enforce_file_format=True)
    except Exception as exc:
        raise NotAcceptable(
            f"Cannot transcode from {source} to {target}", details=str(exc)
        ) from exc
    return out.getvalue()


def convert(ds: pydicom.Dataset, source: str, target: str) -> None:
    """Changes ``ds`` (in transfer syntax ``source``) to ``target``, in place; the SOP Instance
    UID is kept. Raises :class:`NotAcceptable` when no plugin can do it."""
    if source == target:
        return
    try:
        if not is_uncompressed(source):
            ds.decompress(generate_instance_uid=False)  # to explicit VR little endian
        if is_uncompressed(target):
            _set_uncompressed(ds, target)
        else:
            ds.compress(UID(target), generate_instance_uid=False)
    except NotAcceptable:
        raise
    except Exception as exc:
        raise NotAcceptable(
            f"Cannot transcode from {source} to {target}", details=str(exc)
        ) from exc


def _set_uncompressed(ds: pydicom.Dataset, target: str) -> None:
    if target not in (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN):
        raise NotAcceptable(f"Cannot transcode to {target}")
    if ds.file_meta.TransferSyntaxUID == EXPLICIT_VR_BIG_ENDIAN and "PixelData" in ds:
        ds.PixelData = little_endian(ds, bytes(ds.PixelData))
    ds.file_meta.TransferSyntaxUID = UID(target)
    # what pynetdicom checks before encoding the dataset for a presentation context
    ds.set_original_encoding(target == IMPLICIT_VR_LITTLE_ENDIAN, True, ds.original_character_set)


def little_endian(ds: pydicom.Dataset, pixels: bytes) -> bytes:
    """Big endian pixel data of ``ds`` in little endian byte order."""
    bits = int(ds.get("BitsAllocated", 8))
    if bits <= 8:
        return pixels
    dtype = {16: ">u2", 32: ">u4", 64: ">u8"}[bits]
    return np.frombuffer(pixels, dtype=dtype).astype(dtype.replace(">", "<")).tobytes()


# -- sending over DICOM ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SendTranscoding:
    """Orthanc 1.10.1's choice of the transfer syntax of an outgoing C-STORE."""

    #: ``TranscodeDicomProtocol``: transcoding allowed at all (then ``AllowTranscoding``).
    enabled: bool = True
    #: ``DicomScuPreferredTransferSyntax``: proposed too, and tried first when transcoding.
    preferred: str = EXPLICIT_VR_LITTLE_ENDIAN

    @classmethod
    def from_settings(cls, settings: Settings) -> SendTranscoding:
        preferred = str(settings["DicomScuPreferredTransferSyntax"]).strip()
        if not UID(preferred).is_transfer_syntax:
            raise ConfigurationError(
                f"DicomScuPreferredTransferSyntax: unknown transfer syntax {preferred!r}"
            )
        return cls(bool(settings["TranscodeDicomProtocol"]), preferred)

    def proposed(self, allowed: bool) -> tuple[str, ...]:
        """The syntaxes proposed for every SOP class besides its stored ones (Orthanc proposes
        the uncompressed syntaxes always, the preferred one when it may transcode)."""
        extra = (self.preferred,) if self.enabled and allowed else ()
        return tuple(dict.fromkeys((*extra, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)))

    def outgoing(
        self, ds: pydicom.Dataset, accepted: Collection[str], *, allowed: bool, peer_aet: str
    ) -> pydicom.Dataset:
        """``ds`` itself when the peer accepted its syntax (``accepted``: the syntaxes accepted
        for its SOP class), else a transcoded copy. Raises Orthanc's errors: ``NetworkProtocol``
        when transcoding is not allowed (or nothing was accepted for the class),
        ``NotImplemented`` when no accepted syntax can be produced."""
        source = str(ds.file_meta.get("TransferSyntaxUID", EXPLICIT_VR_LITTLE_ENDIAN))
        if source in accepted:
            return ds
        if not accepted or not (self.enabled and allowed):
            raise ObeliskError(
                code=ErrorCode.NetworkProtocol,
                details="No valid presentation context was negotiated for SOP class UID "
                f"[{ds.get('SOPClassUID', '')}] and transfer syntax [{source}] while sending "
                f"to modality [{peer_aet}]",
            )
        targets = self.targets(accepted)
        for position, target in enumerate(targets):
            work = ds if position == len(targets) - 1 else copy.deepcopy(ds)
            try:
                convert(work, source, target)
            except NotAcceptable:
                continue
            return work
        attempted = "".join(f" {uid}" for uid in sorted(targets, key=_uid_order))
        raise ObeliskError(
            code=ErrorCode.NotImplemented,
            details=f"Cannot transcode from {source} to one of [{attempted} ]",
        )

    def targets(self, accepted: Collection[str]) -> list[str]:
        """What to try, in order: the preferred syntax, then explicit and implicit little
        endian, each when the peer accepted it."""
        order = (self.preferred, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)
        return [s for s in dict.fromkeys(order) if s in accepted]


def _uid_order(uid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in uid.split(".") if part.isdigit())
