"""``POST /{level}/{id}/reconstruct``: the main DICOM tags read again from the stored files.

As Orthanc does, the resource and everything below it get the main tags of their files again
(after a parser fix, or an index edited by hand); its ancestors are left alone, except that a
study's copy of its patient's tags is refreshed with the study. Identifiers, metadata and
attachments do not change. Each level takes the tags of the last of its instances read, in tree
order, as at reception.
"""

from __future__ import annotations

from obelisk.core.levels import Level
from obelisk.core.parsing import ParsedInstance, parse_instance
from obelisk.errors import BadFileFormat
from obelisk.services.resources import ResourceService

#: Instances whose rows are rewritten per transaction (the files are read outside of it).
_BATCH = 200


def reconstruct(resources: ResourceService, level: Level, public_id: str) -> int:
    """Rewrites the main tags below (and of) a resource; returns how many files were read."""
    index = resources.index
    files = index.instance_files(resources.get(level, public_id).internal_id)
    #: Resources above the instances, inside the reconstructed subtree, with their last file.
    parents: dict[tuple[Level, str], ParsedInstance] = {}
    for start in range(0, len(files), _BATCH):
        chunk = files[start : start + _BATCH]
        parsed = []
        for file in chunk:
            try:
                parsed.append(parse_instance(resources.reader.read(file.attachment)))
            except BadFileFormat as exc:
                raise BadFileFormat(
                    f"Cannot reconstruct {public_id}: the file of instance {file.public_id} "
                    "is not readable DICOM",
                    details=exc.details,
                ) from exc
        with index.write() as writer:
            for file, instance in zip(chunk, parsed, strict=True):
                writer.replace_main_tags(
                    file.internal_id, Level.INSTANCE, instance.main_tags.get(Level.INSTANCE, {})
                )
        for instance in parsed:
            ids = instance.ids.by_level()
            for parent_level in (Level.PATIENT, Level.STUDY, Level.SERIES):
                if parent_level >= level:
                    parents[(parent_level, ids[parent_level])] = instance
    targets = [
        (found.internal_id, parent_level, instance)
        for (parent_level, parent_id), instance in parents.items()
        # None: the file no longer says where it belongs; that resource is left alone.
        if (found := index.lookup(parent_id, parent_level)) is not None
    ]
    with index.write() as writer:
        for internal_id, parent_level, instance in targets:
            writer.replace_main_tags(
                internal_id,
                parent_level,
                instance.main_tags.get(parent_level, {}),
                instance.main_tags.get(Level.PATIENT, {}) if parent_level is Level.STUDY else None,
            )
    return len(files)
