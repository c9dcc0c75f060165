"""Orthanc's log verbosity (``/tools/log-level*``) over Python loggers, and JSON log lines.

Orthanc 1.10.1 has one global verbosity and one per category, each ``default``, ``verbose`` or
``trace``. Here a category is a set of Python loggers; the verbosities map to levels::

    default → INFO   (Obelisk's usual output: start-up, jobs, refusals; Orthanc's is warnings)
    verbose → DEBUG  (one structured line per HTTP request, …)
    trace   → TRACE (5), and third-party protocol libraries (pynetdicom) at DEBUG

Python loggers belong to the process, so two servers in one process share these levels.
:class:`JsonLogFormatter` writes one JSON object per line with every ``extra`` field
(``Obelisk.LogFormat: "json"``), for log shippers.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

from obelisk.errors import ConfigurationError, ParameterOutOfRange

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

VERBOSITIES = {"default": logging.INFO, "verbose": logging.DEBUG, "trace": TRACE}

#: Orthanc's categories → Obelisk's loggers (the first one is read back by GET).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "generic": ("obelisk",),
    "http": ("obelisk.http",),
    "dicom": ("obelisk.dicom", "obelisk.dicomweb"),
    "jobs": ("obelisk.jobs",),
    "sqlite": ("obelisk.index",),
    "lua": ("obelisk.scripting",),
    "plugins": ("obelisk.plugins",),
}

#: Libraries whose debug output is a protocol dump: quieter by one step.
_THIRD_PARTY = {"dicom": ("pynetdicom",)}
_THIRD_PARTY_LEVELS = {"default": logging.WARNING, "verbose": logging.INFO, "trace": logging.DEBUG}


def verbosity_of(level: int) -> str:
    if level <= TRACE:
        return "trace"
    return "verbose" if level <= logging.DEBUG else "default"


def get_verbosity(category: str | None = None) -> str:
    """The verbosity of a category (``None``: the global one, read from ``generic``)."""
    name = CATEGORIES[_category(category)][0]
    return verbosity_of(logging.getLogger(name).getEffectiveLevel())


def set_verbosity(verbosity: str, category: str | None = None) -> None:
    """Applies at once; ``None`` sets every category, as Orthanc's ``/tools/log-level``."""
    verbosity = verbosity.strip().lower()
    if verbosity not in VERBOSITIES:
        raise ParameterOutOfRange(
            f'Unknown log level "{verbosity}"', details="expected default, verbose or trace"
        )
    categories = list(CATEGORIES) if category is None else [_category(category)]
    for each in categories:
        for name in CATEGORIES[each]:
            logging.getLogger(name).setLevel(VERBOSITIES[verbosity])
        for name in _THIRD_PARTY.get(each, ()):
            logging.getLogger(name).setLevel(_THIRD_PARTY_LEVELS[verbosity])


def _category(category: str | None) -> str:
    if category is None:
        return "generic"
    if category not in CATEGORIES:
        raise ParameterOutOfRange(f'Unknown log category "{category}"')
    return category


#: LogRecord attributes that are not ``extra`` fields.
_STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_FIELDS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def use_log_format(log_format: str, logger: logging.Logger | None = None) -> None:
    """``"json"``: JSON lines on the stream handlers of ``logger`` (the root one by default)."""
    if log_format == "text":
        return
    if log_format != "json":
        raise ConfigurationError(f'Obelisk.LogFormat must be "text" or "json", not "{log_format}"')
    for handler in (logger or logging.getLogger()).handlers:
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(JsonLogFormatter())
