"""``/tools/create-dicom``: new instances from JSON tags and an optional PDF or image payload.

Differences from Orthanc 1.10.1, on purpose: SOPClassUID is always set (Encapsulated PDF Storage,
Secondary Capture Image Storage for images, Raw Data Storage when there is no payload), so that the
instance can be sent over DICOM later; private tags get their Private Creator element.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset

from obelisk.core.levels import Level
from obelisk.errors import BadRequest, ErrorCode, InexistentItem, ObeliskError, UnknownResource
from obelisk.services.dicom_values import (
    IDENTIFIERS,
    PATIENT_MODULE,
    SERIES_MODULE,
    STUDY_MODULE,
    PrivateDictionary,
    build_element,
    decode_data_uri,
    ensure_private_creator,
    needs_unicode,
    resolve_tag,
)
from obelisk.services.ingest import Origin, StoreResult

if TYPE_CHECKING:
    from obelisk.services.context import Services

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
RAW_DATA = "1.2.840.10008.5.1.4.1.1.66"
_CHARSETS = {"Ascii": None, "Latin1": "ISO_IR 100", "Utf8": "ISO_IR 192"}


@dataclass(frozen=True, slots=True)
class CreateRequest:
    tags: dict[str, Any]
    content: str | list[str] | None = None
    parent: str | None = None
    force: bool = False
    interpret_binary: bool = True
    private_creator: str = ""

    @classmethod
    def parse(cls, body: dict[str, Any]) -> CreateRequest:
        tags = body.get("Tags", {})
        if not isinstance(tags, dict):
            raise BadRequest('"Tags" must be a JSON object')
        content = body.get("Content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest('"Content" must be a data URI or a list of data URIs')
        parent = body.get("Parent")
        if parent is not None and not isinstance(parent, str):
            raise BadRequest('"Parent" must be an Orthanc identifier')
        for key in ("Force", "InterpretBinaryTags"):
            if key in body and not isinstance(body[key], bool):
                raise BadRequest(f'"{key}" must be a Boolean')
        return cls(
            tags=tags,
            content=content,
            parent=parent,
            force=bool(body.get("Force", False)),
            interpret_binary=bool(body.get("InterpretBinaryTags", True)),
            private_creator=str(body.get("PrivateCreator", "")),
        )


class CreationService:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.dictionary = PrivateDictionary.from_settings(services.settings["Dictionary"] or {})

    def create(self, request: CreateRequest, origin: Origin) -> StoreResult | list[StoreResult]:
        """Stores the new instance (or one per payload when ``Content`` is a list)."""
        inherited, parent_level = self._inherited(request.parent)
        payloads: list[str | None]
        if isinstance(request.content, list):
            if not request.content:
                raise ObeliskError(code=ErrorCode.CreateDicomNoPayload)
            payloads = list(request.content)
        else:
            payloads = [request.content]
        series_uid = pydicom.uid.generate_uid() if len(payloads) > 1 else None
        results = []
        for number, payload in enumerate(payloads, start=1):
            ds = self.build(request, payload, inherited, parent_level)
            if series_uid is not None:
                if "SeriesInstanceUID" not in request.tags:
                    ds.SeriesInstanceUID = series_uid
                if "InstanceNumber" not in request.tags:
                    ds.InstanceNumber = number
            results.append(self.services.ingest.store(encode(ds), origin))
        return results if isinstance(request.content, list) else results[0]

    def _inherited(self, parent: str | None) -> tuple[Dataset, Level | None]:
        if parent is None:
            return Dataset(), None
        try:
            resource = self.services.resources.get_any(parent)
        except UnknownResource as exc:
            raise ObeliskError(code=ErrorCode.CreateDicomBadParent, details=parent) from exc
        if resource.level is Level.INSTANCE:
            raise ObeliskError(code=ErrorCode.CreateDicomParentIsInstance, details=parent)
        resources = self.services.resources
        sibling = resources.dataset(
            resources.any_instance(resource.level, parent), stop_before_pixels=True
        )
        wanted = set(PATIENT_MODULE)
        if resource.level >= Level.STUDY:
            wanted |= STUDY_MODULE
        if resource.level >= Level.SERIES:
            wanted |= SERIES_MODULE
        inherited = Dataset()
        for element in sibling:
            if int(element.tag) in wanted or element.keyword == "SpecificCharacterSet":
                inherited.add(element)
        return inherited, resource.level

    def build(
        self,
        request: CreateRequest,
        payload: str | None,
        inherited: Dataset,
        parent_level: Level | None,
    ) -> Dataset:
        ds = Dataset()
        now = dt.datetime.now()
        date, time_ = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
        charset = _CHARSETS.get(str(self.services.settings["DefaultEncoding"]), "ISO_IR 100")
        if needs_unicode(request.tags.values()):
            charset = "ISO_IR 192"
        if "SpecificCharacterSet" in inherited:
            charset = str(inherited.SpecificCharacterSet)
        if charset:
            ds.SpecificCharacterSet = charset
        for keyword in ("InstanceCreation", "Study", "Series", "Acquisition", "Content"):
            setattr(ds, f"{keyword}Date", date)
            setattr(ds, f"{keyword}Time", time_)
        ds.PatientID = str(uuid.uuid4())
        ds.StudyInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        inherited_tags = {int(e.tag) for e in inherited}
        for element in inherited:
            ds[element.tag] = element
        self._content(ds, payload)
        for name, value in request.tags.items():
            tag = resolve_tag(name, self.dictionary)
            if tag in inherited_tags and parent_level is not None:
                raise ObeliskError(code=ErrorCode.CreateDicomOverrideTag, details=name)
            if tag in IDENTIFIERS and tag != 0x00100020 and not request.force:
                raise BadRequest(
                    f'Setting the identifier "{name}" requires the "Force" option to be true'
                )
            if tag == 0x7FE00010:
                raise ObeliskError(code=ErrorCode.CreateDicomUseContent)
            ds[tag] = build_element(
                tag, value, dictionary=self.dictionary, decode_binary=request.interpret_binary
            )
            creator = request.private_creator
            entry = self.dictionary.lookup(tag)
            ensure_private_creator(ds, tag, creator or (entry[2] if entry else ""))
        if "SOPClassUID" not in ds:
            ds.SOPClassUID = RAW_DATA
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        return ds

    def _content(self, ds: Dataset, payload: str | None) -> None:
        if payload is None:
            return
        decoded = decode_data_uri(payload)
        if decoded is None:
            raise ObeliskError(code=ErrorCode.CreateDicomUseDataUriScheme)
        mime, data = decoded
        if mime == "application/pdf":
            ds.SOPClassUID = ENCAPSULATED_PDF
            ds.Modality = "OT"
            ds.ConversionType = "WSD"
            ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
            ds.add(DataElement(0x00420011, "OB", data + (b"\0" if len(data) % 2 else b"")))
        elif mime in ("image/png", "image/jpeg"):
            _put_image(ds, data)
        else:
            raise ObeliskError(
                code=ErrorCode.CreateDicomUseDataUriScheme, details=f"Unsupported type: {mime}"
            )

    def pdf(self, public_id: str) -> bytes:
        """The encapsulated PDF of an instance (``GET /instances/{id}/pdf``)."""
        ds = self.services.resources.dataset(public_id)
        mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "") or "").strip()
        if "EncapsulatedDocument" not in ds or mime != "application/pdf":
            raise InexistentItem(f"Instance {public_id} does not contain a PDF document")
        data = bytes(ds.EncapsulatedDocument)
        return data[:-1] if data.endswith(b"\0") else data  # the even-length padding


def _put_image(ds: Dataset, data: bytes) -> None:
    """Decodes PNG/JPEG with Pillow into an uncompressed Secondary Capture image."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is an optional dependency
        raise ObeliskError(
            code=ErrorCode.NotImplemented, details="Pillow is needed to decode images"
        ) from exc
    try:
        opened = Image.open(io.BytesIO(data))
        opened.load()
        image: Image.Image = opened
    except Exception as exc:
        raise BadRequest("Cannot decode the image", details=str(exc)) from exc
    mode = image.mode
    if mode in ("I;16", "I;16B", "I"):
        image = image.convert("I;16") if mode != "I;16" else image
        samples, photometric, bits = 1, "MONOCHROME2", 16
    elif mode in ("L", "1", "P") and (mode != "P" or image.palette is None):
        image = image.convert("L")
        samples, photometric, bits = 1, "MONOCHROME2", 8
    else:
        image = image.convert("RGB")
        samples, photometric, bits = 3, "RGB", 8
    ds.SOPClassUID = SECONDARY_CAPTURE
    if "Modality" not in ds:
        ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.Rows, ds.Columns = image.height, image.width
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if samples == 3:
        ds.PlanarConfiguration = 0
    raw = image.tobytes()
    if len(raw) % 2:
        raw += b"\0"
    ds.add(DataElement(0x7FE00010, "OW" if bits == 16 else "OB", raw))


def encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
