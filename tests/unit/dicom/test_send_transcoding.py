"""Orthanc 1.10.1's choice of the syntax of an outgoing C-STORE (``SendTranscoding``) and the
contexts proposed for it (one per SOP class and transfer syntax)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from obelisk.dicom.contexts import storage_contexts
from obelisk.errors import ErrorCode, ObeliskError
from obelisk.services.transcoding import (
    EXPLICIT_VR_LITTLE_ENDIAN as EXPLICIT,
)
from obelisk.services.transcoding import (
    IMPLICIT_VR_LITTLE_ENDIAN as IMPLICIT,
)
from obelisk.services.transcoding import SendTranscoding
from tests.support.images import gradient, jpeg_baseline, make_image, rle

CT = "1.2.840.10008.5.1.4.1.1.2"


def _jpeg() -> pydicom.Dataset:
    return jpeg_baseline(make_image(gradient(16, 16, 255).astype(np.uint8)))


def test_the_stored_syntax_is_sent_as_is_when_accepted() -> None:
    ds = _jpeg()
    assert SendTranscoding().outgoing(ds, [JPEGBaseline8Bit], allowed=True, peer_aet="P") is ds


def test_the_preferred_syntax_comes_first() -> None:
    ds = rle(make_image(gradient(16, 16)))
    original = ds.pixel_array.copy()
    out = SendTranscoding().outgoing(ds, [IMPLICIT, EXPLICIT], allowed=True, peer_aet="P")
    assert out.file_meta.TransferSyntaxUID == EXPLICIT
    np.testing.assert_array_equal(out.pixel_array, original)
    assert ds.file_meta.TransferSyntaxUID == RLELossless  # a copy was transcoded


def test_implicit_when_only_implicit_is_accepted() -> None:
    ds = _jpeg()
    pixels = ds.pixel_array.copy()
    out = SendTranscoding().outgoing(ds, [IMPLICIT], allowed=True, peer_aet="P")
    assert out.file_meta.TransferSyntaxUID == IMPLICIT
    assert out.original_encoding[0] is True
    np.testing.assert_array_equal(out.pixel_array, pixels)


def test_a_compressed_preferred_syntax() -> None:
    ds = make_image(gradient(64, 64))  # openjpeg's default resolutions need 64 x 64
    out = SendTranscoding(preferred=JPEG2000Lossless).outgoing(
        ds, [JPEG2000Lossless], allowed=True, peer_aet="P"
    )
    assert out.file_meta.TransferSyntaxUID == JPEG2000Lossless
    np.testing.assert_array_equal(out.pixel_array, gradient(64, 64))


@pytest.mark.parametrize("policy, allowed", [(SendTranscoding(), False),
                                             (SendTranscoding(enabled=False), True)])  # fmt: skip
def test_no_transcoding_is_a_network_error(policy: SendTranscoding, allowed: bool) -> None:
    ds = make_image(gradient(16, 16))  # explicit: not even converted to implicit, as Orthanc
    with pytest.raises(ObeliskError) as raised:
        policy.outgoing(ds, [IMPLICIT], allowed=allowed, peer_aet="PEER")
    assert raised.value.code is ErrorCode.NetworkProtocol
    assert raised.value.details == (
        "No valid presentation context was negotiated for SOP class UID "
        "[1.2.840.10008.5.1.4.1.1.7] and transfer syntax [1.2.840.10008.1.2.1] while sending "
        "to modality [PEER]"
    )


def test_nothing_producible_is_not_implemented() -> None:
    with pytest.raises(ObeliskError) as raised:
        SendTranscoding().outgoing(_jpeg(), [JPEG2000Lossless], allowed=True, peer_aet="P")
    assert raised.value.code is ErrorCode.NotImplemented
    assert raised.value.details == "Cannot transcode from 1.2.840.10008.1.2.4.50 to one of [ ]"


def test_proposed_syntaxes() -> None:
    assert SendTranscoding().proposed(True) == (EXPLICIT, IMPLICIT)
    preferred = SendTranscoding(preferred=JPEG2000Lossless)
    assert preferred.proposed(True) == (JPEG2000Lossless, EXPLICIT, IMPLICIT)
    assert preferred.proposed(False) == (EXPLICIT, IMPLICIT)


def test_one_context_per_class_and_syntax_stored_ones_first() -> None:
    contexts = storage_contexts([(CT, JPEGBaseline8Bit), (CT, JPEG2000Lossless), (CT, EXPLICIT)])
    pairs = [(c.abstract_syntax, c.transfer_syntax) for c in contexts]
    assert pairs == [
        (CT, [EXPLICIT]),
        (CT, [JPEGBaseline8Bit]),
        (CT, [JPEG2000Lossless]),
        (CT, [IMPLICIT]),
    ]
