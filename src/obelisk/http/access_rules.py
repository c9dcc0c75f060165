"""Which permission an HTTP request needs, by path family and method — never by route.

Rules are tried in order; the first whose method set and path pattern match gives the
permission. A request no rule matches needs ``admin`` (deny by default), so a route added later
is reachable by administrators only until a rule here names its family. The unit test
``tests/unit/http/test_auth_routes.py`` walks every route of the app through these rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

READ_METHODS = frozenset({"GET", "HEAD"})
ANY_METHOD: frozenset[str] = frozenset()

_LEVEL = r"/(?:patients|studies|series|instances)"
_ID = r"/[^/]+"


@dataclass(frozen=True)
class AccessRule:
    methods: frozenset[str]  # empty: any method
    pattern: re.Pattern[str]
    permission: str

    def matches(self, method: str, path: str) -> bool:
        return (not self.methods or method in self.methods) and bool(self.pattern.fullmatch(path))


def _rule(methods: Iterable[str], pattern: str, permission: str) -> AccessRule:
    return AccessRule(frozenset(methods), re.compile(pattern), permission)


_GET, _POST, _PUT, _DELETE = ("GET", "HEAD"), ("POST",), ("PUT",), ("DELETE",)


def dicomweb_rules(root: str, wado_root: str) -> tuple[AccessRule, ...]:
    """DICOMweb under its configured roots (``DicomWeb.Root``, ``DicomWeb.WadoRoot``)."""
    root, wado = re.escape(root.rstrip("/")), re.escape(wado_root.rstrip("/"))
    return (
        _rule(ANY_METHOD, rf"{root}/servers(/.*)?", "network"),
        _rule(_POST, rf"{root}/studies(/[^/]+)?", "upload"),
        _rule(_GET, rf"({root}|{wado})(/.*)?", "read"),
    )


#: Families of routes, most specific first.
RULES: tuple[AccessRule, ...] = (
    # Administration, whatever the method.
    _rule(
        ANY_METHOD, r"/tools/(execute-script|shutdown|reset|reconstruct|invalidate-tags)", "admin"
    ),
    _rule(_POST, rf"/instances{_ID}/export", "admin"),  # writes on the server's disk
    # Observability.
    _rule(_GET, r"/tools/metrics(-prometheus)?", "metrics"),
    _rule(_GET, r"/tools/log-level(-[a-z]+)?", "read"),
    # DICOM network, peers and transfers: reading their configuration is theirs too.
    _rule(ANY_METHOD, r"/(modalities|peers|queries|transfers)(/.*)?", "network"),
    *dicomweb_rules("/dicom-web", "/wado"),
    _rule(ANY_METHOD, r"/tools/dicom-echo", "network"),
    # Storing new instances.
    _rule(_POST, r"/instances", "upload"),
    _rule(_POST, r"/tools/create-dicom", "upload"),
    # Reading: downloads and searches sent as POST.
    _rule(_POST, rf"{_LEVEL}{_ID}/(archive|media)", "read"),
    _rule(_POST, r"/tools/(find|lookup|create-archive|create-media|create-media-extended)", "read"),
    _rule(_POST, r"/tools/bulk-content", "read"),
    # Changing stored data.
    _rule(_POST, rf"{_LEVEL}{_ID}/(modify|anonymize|merge|split)", "edit"),
    _rule(_POST, rf"{_LEVEL}{_ID}/attachments/[^/]+/verify-md5", "read"),
    _rule(_POST, rf"{_LEVEL}{_ID}/attachments/.+", "edit"),
    _rule(_POST, r"/tools/(bulk-delete|bulk-modify|bulk-anonymize)", "edit"),
    _rule((*_PUT, *_DELETE), rf"{_LEVEL}{_ID}(/.*)?", "edit"),
    _rule(_DELETE, r"/(changes|exports)", "edit"),
    # Jobs: anyone who reads may watch them; controlling them is the operator's.
    _rule(_GET, r"/(jobs|queue)(/.*)?", "read"),
    _rule(ANY_METHOD, r"/(jobs|queue)(/.*)?", "jobs"),
    # Everything else that is read: data, status, tools, DICOMweb, pages and the viewer.
    _rule(_GET, rf"{_LEVEL}(/.*)?", "read"),
    _rule(_GET, r"/(system|statistics|changes|exports|plugins(/.*)?)", "read"),
    _rule(_GET, r"/tools(/[a-z0-9-]+)?", "read"),
    _rule(_GET, r"/(|favicon\.ico|ui(/.*)?|browse(/.*)?|static(/.*)?|app(/.*)?)", "read"),
)

#: The permission of a request no rule matches.
FALLBACK_PERMISSION = "admin"


def required_permission(method: str, path: str, rules: Iterable[AccessRule] = RULES) -> str:
    for rule in rules:
        if rule.matches(method, path):
            return rule.permission
    return FALLBACK_PERMISSION


def read_prefix_rule(prefix: str) -> AccessRule:
    """A rule for a configured static folder (``Obelisk.StaticDocrootPath``)."""
    return _rule(_GET, re.escape(prefix.rstrip("/")) + r"(/.*)?", "read")
