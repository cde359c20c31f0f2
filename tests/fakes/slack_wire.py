"""How the Slack emulator reads Web API requests and shapes its error answers.

Slack accepts arguments in the query string, a form body or a JSON body, takes the token
from the ``Authorization`` header or a ``token`` argument, and reads booleans from strings.
These helpers decode a request the same way so every handler sees one plain dict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from tests.fakes.slack_records import JsonDict

__all__ = [
    "ApiError",
    "bearer_token",
    "decode_json_fields",
    "error_body",
    "has_content",
    "read_params",
    "truthy",
]

# Payload fields that arrive JSON-encoded inside form data and are decoded for recording.
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata")


class ApiError(Exception):
    """Raised inside a method handler to answer ``{"ok": false, "error": code}``."""

    def __init__(self, code: str, messages: Iterable[str] = ()) -> None:
        super().__init__(code)
        self.code = code
        self.messages = list(messages)


def error_body(exc: ApiError) -> JsonDict:
    """The JSON body Slack answers a failed call with."""
    body: JsonDict = {"ok": False, "error": exc.code}
    if exc.messages:
        body["response_metadata"] = {"messages": exc.messages}
    return body


async def read_params(request: web.Request) -> JsonDict:
    """Merge query string and body into one dict, as Slack accepts either."""
    params: JsonDict = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise ApiError("invalid_json", ["the JSON body must be an object"])
        params.update(body)
    elif request.can_read_body:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return decode_json_fields(params)


def decode_json_fields(params: JsonDict) -> JsonDict:
    """Form-encoded calls carry ``blocks``/``view`` as JSON strings; decode them if valid."""
    decoded = dict(params)
    for name in _JSON_FIELDS:
        value = decoded.get(name)
        if isinstance(value, str):
            try:
                decoded[name] = json.loads(value)
            except json.JSONDecodeError:
                pass  # left as a string; the validators report it as malformed
    return decoded


def bearer_token(headers: Mapping[str, str], params: Mapping[str, Any]) -> str | None:
    """The token of a call: the ``Authorization: Bearer`` header, else a ``token`` argument."""
    header = headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip() or None
    token = params.get("token")
    return str(token) if token else None


def truthy(value: Any) -> bool:
    """Slack reads booleans from form fields as "true"/"1"."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def has_content(payload: Mapping[str, Any]) -> bool:
    """Whether a message payload carries something to show (text, blocks or attachments)."""
    return bool(payload.get("text") or payload.get("blocks") or payload.get("attachments"))
