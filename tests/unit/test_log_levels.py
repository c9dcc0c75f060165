"""JSON log lines and the structured per-request line of the HTTP edge."""

from __future__ import annotations

import io
import json
import logging

import pytest
from starlette.testclient import TestClient

from obelisk.errors import ConfigurationError
from obelisk.log_levels import JsonLogFormatter, use_log_format


def test_json_lines_carry_the_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "obelisk.http", "levelname": "INFO", "msg": "GET %s", "args": ("/system",)}
    )
    record.status = 200
    line = json.loads(JsonLogFormatter().format(record))
    assert line["logger"] == "obelisk.http"
    assert line["message"] == "GET /system"
    assert line["status"] == 200
    assert line["time"].endswith("+00:00")


def test_use_log_format_switches_stream_handlers_only() -> None:
    logger = logging.getLogger("obelisk.test-json-format")
    stream = logging.StreamHandler(io.StringIO())
    other = logging.NullHandler()
    logger.addHandler(stream)
    logger.addHandler(other)
    try:
        use_log_format("json", logger)
        assert isinstance(stream.formatter, JsonLogFormatter)
        assert other.formatter is None
        with pytest.raises(ConfigurationError):
            use_log_format("xml", logger)
    finally:
        logger.removeHandler(stream)
        logger.removeHandler(other)


def test_each_request_is_logged_with_its_fields_at_debug(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="obelisk.http"):
        client.get("/statistics")
    [record] = [r for r in caplog.records if getattr(r, "path", None) == "/statistics"]
    assert record.__dict__["method"] == "GET"
    assert record.__dict__["status"] == 200
    assert record.__dict__["duration_ms"] >= 0
