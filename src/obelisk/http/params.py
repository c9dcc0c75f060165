"""Reading Orthanc's query arguments and JSON bodies, with Orthanc's errors when they are wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request

from obelisk.core.levels import Level
from obelisk.errors import BadJson, BadRequest, ParameterOutOfRange
from obelisk.services.context import Services

_T = TypeVar("_T")


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def flag(request: Request, name: str) -> bool:
    """Orthanc's boolean arguments: present means true unless it says ``false`` or ``0``."""
    if name not in request.query_params:
        return False
    return request.query_params[name].lower() not in ("false", "0")


def tag_style(request: Request) -> str:
    if flag(request, "short"):
        return "short"
    if flag(request, "full"):
        return "full"
    return "human"


def _argument(request: Request, name: str, convert: Callable[[str], _T], what: str) -> _T | None:
    """A query argument converted, None when absent; a bad value is a 400 naming it."""
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return convert(text)
    except ValueError as exc:
        raise ParameterOutOfRange(f'Argument "{name}" must be {what}, got "{text}"') from exc


def integer(request: Request, name: str, default: int | None = None) -> int | None:
    value = _argument(request, name, int, "an integer")
    return default if value is None else value


def number(request: Request, name: str) -> float | None:
    return _argument(request, name, float, "a number")


def since_limit(request: Request) -> tuple[int, int | None]:
    """``since`` and ``limit`` go together for resource lists, as in Orthanc."""
    since = integer(request, "since")
    limit = integer(request, "limit")
    if (since is None) != (limit is None):
        missing = "limit" if limit is None else "since"
        raise BadRequest(
            f'Missing "{missing}" argument for GET request against: {request.url.path}'
        )
    if (since or 0) < 0 or (limit or 0) < 0:
        raise ParameterOutOfRange('"since" and "limit" must be non-negative')
    return since or 0, limit


def level_of(request: Request) -> Level:
    plural = request.url.path.strip("/").split("/")[0]
    return Level.from_plural(plural)


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise BadJson("The request body is empty; a JSON document was expected")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadJson("Cannot parse the JSON body of the request", details=str(exc)) from exc


async def json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("The body must contain a JSON object", details=str(exc)) from exc
    if not isinstance(body, dict):
        raise BadRequest("The body must contain a JSON object")
    return body


def expect_type(body: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    if key not in body:
        return default
    value = body[key]
    if kind is int and isinstance(value, bool):
        raise BadRequest(f'Field "{key}" must be an integer')
    if kind is int and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if not isinstance(value, kind):
        raise BadRequest(f'Field "{key}" must be of type {kind.__name__}')
    return value
