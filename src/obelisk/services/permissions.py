"""Who may do what: user groups and their permissions, from a file re-read when it changes.

A principal (a ``RegisteredUsers`` name or a bearer token's name) belongs to groups; a group
grants permissions. The file (``Obelisk.PermissionsFile``, JSON with comments like
``orthanc.json``) is checked for a new modification time on every lookup, at most once a second,
so an administrator edits it without restarting the server — as the Bluesky queue server's user
group permissions. A file that becomes invalid is reported in the log and the previous table kept::

    {
      "Groups": {"radiologist": ["read", "metrics", "edit"]},   // added to the built-in groups
      "Users":  {"alice": ["read-only"], "ci-bot": ["uploader"], "ops": ["operator"]},
      "DefaultGroups": []   // groups of an authenticated principal the file does not name
    }

Without a file every authenticated principal is an administrator, as in Orthanc.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obelisk.config import strip_comments
from obelisk.errors import ConfigurationError

log = logging.getLogger("obelisk.permissions")

#: Every permission, from the most common to the most powerful.
PERMISSIONS = ("read", "metrics", "upload", "edit", "jobs", "network", "admin")

#: What each permission allows (docs/security-and-observability.md has the full route table).
PERMISSION_MEANINGS = {
    "read": "read stored data, download archives, view pages and the server's status",
    "metrics": "scrape /tools/metrics-prometheus",
    "upload": "store new instances (REST, STOW-RS, create-dicom)",
    "edit": "modify, anonymize, delete, metadata, attachments, labels, protection",
    "jobs": "control jobs and the queue (pause, cancel, resubmit, move, dispatch)",
    "network": "DICOM modalities, queries/retrieves, Orthanc peers, transfers, DICOMweb servers",
    "admin": "settings, log levels, scripts, shutdown and every route no rule names",
}

BUILTIN_GROUPS: dict[str, frozenset[str]] = {
    "read-only": frozenset({"read", "metrics"}),
    "uploader": frozenset({"read", "metrics", "upload"}),
    "operator": frozenset({"read", "metrics", "upload", "edit", "jobs", "network"}),
    "admin": frozenset(PERMISSIONS),
}


@dataclass(frozen=True)
class PermissionTable:
    groups: Mapping[str, frozenset[str]] = field(default_factory=lambda: dict(BUILTIN_GROUPS))
    users: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_groups: tuple[str, ...] = ()

    def groups_of(self, principal: str) -> tuple[str, ...]:
        return self.users.get(principal, self.default_groups)

    def permissions_of(self, principal: str) -> frozenset[str]:
        granted: set[str] = set()
        for group in self.groups_of(principal):
            granted |= self.groups.get(group, frozenset())
        return frozenset(granted)


def parse_table(raw: Any, source: str = "permissions") -> PermissionTable:
    """Checks the JSON document of a permissions file; raises :class:`ConfigurationError`."""
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{source}: must hold a JSON object")
    unknown = set(raw) - {"Groups", "Users", "DefaultGroups"}
    if unknown:
        raise ConfigurationError(f"{source}: unknown keys {sorted(unknown)}")
    groups = dict(BUILTIN_GROUPS)
    for name, permissions in _object(raw, "Groups", source).items():
        listed = _strings(permissions, f'{source}: group "{name}"')
        bad = set(listed) - set(PERMISSIONS)
        if bad:
            raise ConfigurationError(
                f'{source}: group "{name}" has unknown permissions {sorted(bad)}',
                details=f"known: {', '.join(PERMISSIONS)}",
            )
        groups[name] = frozenset(listed)
    users: dict[str, tuple[str, ...]] = {}
    for principal, member_of in _object(raw, "Users", source).items():
        users[principal] = _known_groups(member_of, groups, f'{source}: user "{principal}"')
    default = _known_groups(raw.get("DefaultGroups", []), groups, f"{source}: DefaultGroups")
    return PermissionTable(groups, users, default)


def _object(raw: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigurationError(f'{source}: "{key}" must be a JSON object')
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{what} must be a string or a list of strings")
    return tuple(value)


def _known_groups(value: Any, groups: Mapping[str, Any], what: str) -> tuple[str, ...]:
    listed = _strings(value, what)
    missing = [g for g in listed if g not in groups]
    if missing:
        raise ConfigurationError(f"{what} names unknown groups {missing}")
    return listed


class Permissions:
    """The current :class:`PermissionTable`, re-read from ``path`` when its mtime changes."""

    def __init__(
        self,
        path: Path | None,
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._check_interval = check_interval
        self._clock = clock
        self._guard = threading.Lock()
        self._mtime_ns = -1
        self._checked_at = float("-inf")
        self._table = PermissionTable()
        if path is not None:
            self._table = self._read(path)  # a bad file at start is a configuration error
            self._mtime_ns = path.stat().st_mtime_ns
            self._checked_at = clock()

    @property
    def restricted(self) -> bool:
        """False without a file: every authenticated principal may do everything."""
        return self.path is not None

    def table(self) -> PermissionTable:
        if self.path is not None and self._clock() - self._checked_at >= self._check_interval:
            self._reload_if_changed(self.path)
        return self._table

    def allows(self, principal: str, permission: str) -> bool:
        if not self.restricted:
            return True
        return permission in self.table().permissions_of(principal)

    def groups_of(self, principal: str) -> tuple[str, ...]:
        return self.table().groups_of(principal) if self.restricted else ("admin",)

    def _reload_if_changed(self, path: Path) -> None:
        with self._guard:
            self._checked_at = self._clock()
            try:
                mtime_ns = path.stat().st_mtime_ns
            except OSError as exc:
                log.error(
                    "Cannot read the permissions file %s, keeping the last one: %s", path, exc
                )
                return
            if mtime_ns == self._mtime_ns:
                return
            self._mtime_ns = mtime_ns
            try:
                self._table = self._read(path)
            except ConfigurationError as exc:
                log.error("Invalid permissions file %s, keeping the last one: %s", path, exc)
                return
            log.info("Permissions reloaded from %s", path)

    @staticmethod
    def _read(path: Path) -> PermissionTable:
        try:
            raw = json.loads(strip_comments(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"Cannot read the permissions file {path}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"The permissions file {path} is not valid JSON", details=str(exc)
            ) from exc
        return parse_table(raw, os.fspath(path))


def groups_granting(permission: str, groups: Iterable[str] = BUILTIN_GROUPS) -> list[str]:
    """The built-in groups that grant ``permission`` (for error messages)."""
    return [g for g in groups if permission in BUILTIN_GROUPS.get(g, frozenset())]
