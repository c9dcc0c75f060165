"""JSON as Orthanc writes it (sorted keys, 3-space indent) and the Orthanc error body."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from obelisk.errors import ObeliskError


class OrthancJSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, indent=3, sort_keys=True, ensure_ascii=False).encode("utf-8")


def ok() -> OrthancJSON:
    """Orthanc's answer to a successful action with nothing to say."""
    return OrthancJSON({})


def empty() -> Response:
    """Orthanc's answer to some deletions (``DELETE /changes``): an empty text body."""
    return Response(b"", media_type="text/plain")


def error_body(request: Request, error: ObeliskError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "HttpError": HTTPStatus(error.http_status).phrase,
        "HttpStatus": error.http_status,
        "Message": error.code.description,
        "Method": request.method,
        "OrthancError": error.code.description,
        "OrthancStatus": error.code.number,
        "Uri": request.url.path,
    }
    # As in Orthanc, "Message" names the error code and "Details" says what was wrong.
    details = [text for text in (error.message, error.details) if text]
    details = [text for text in details if text != error.code.description]
    if details:
        body["Details"] = ": ".join(details)
    return body


def render_error(request: Request, error: ObeliskError, *, describe: bool = True) -> Response:
    if not describe:
        return Response(status_code=error.http_status)
    return Response(
        json.dumps(error_body(request, error), indent="\t", sort_keys=True).encode(),
        status_code=error.http_status,
        media_type="application/json",
    )
