"""The storage area: bytes by attachment uuid. Knows nothing of DICOM, the index or HTTP."""

from obelisk.storage.base import StorageArea
from obelisk.storage.filesystem import FilesystemStorage
from obelisk.storage.memory import MemoryStorage

__all__ = ["FilesystemStorage", "MemoryStorage", "StorageArea"]
