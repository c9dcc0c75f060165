"""Orthanc's timestamp formats."""

from __future__ import annotations

import datetime as dt


def now_iso(*, utc: bool = True) -> str:
    """``YYYYMMDDTHHMMSS``, as Orthanc writes ReceptionDate, LastUpdate and ``/changes`` dates."""
    now = dt.datetime.now(dt.UTC) if utc else dt.datetime.now()
    return now.strftime("%Y%m%dT%H%M%S")


def now_iso_micro(*, utc: bool = True) -> str:
    """``YYYYMMDDTHHMMSS.ffffff``, as in job CreationTime/CompletionTime/Timestamp."""
    now = dt.datetime.now(dt.UTC) if utc else dt.datetime.now()
    return now.strftime("%Y%m%dT%H%M%S.%f")
