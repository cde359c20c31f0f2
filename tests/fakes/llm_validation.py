"""The requests the fake LLM server refuses, the way the real API refuses them.

Decodes a request body and checks a chat-completions request against the rules OpenAI is
known to enforce (model present, messages non-empty and well ordered around tool calls,
names matching ``[a-zA-Z0-9_-]``, ``stream_options`` only with ``stream``), raising
``RequestError`` with the real API's wording so the server can answer HTTP 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fakes.llm_wire import JsonDict

__all__ = ["RequestError", "decode_json", "validate_chat_request"]

# The pattern and length OpenAI enforces for function names in ``tools`` and for the
# ``name`` of a message (autogen fills that from a message's ``source``).
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class RequestError(Exception):
    """A request the real API would refuse with HTTP 400."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def decode_json(body: bytes) -> tuple[JsonDict, str | None]:
    """The body as a JSON object, or ``{}`` and the reason it is not one."""
    try:
        value = json.loads(body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"We could not parse the JSON body of your request. ({exc})"
    if not isinstance(value, dict):
        return {}, "We could not parse the JSON body of your request: expected an object."
    return value, None


def validate_chat_request(payload: JsonDict) -> None:
    """Refuse what the real API refuses, with its wording, so app bugs surface in tests.

    Only rules the real API is known to enforce are checked; a false refusal here would
    send someone chasing a bug that production does not have.
    """
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        raise RequestError("you must provide a model parameter", "model")
    messages = payload.get("messages")
    if not isinstance(messages, list):
        raise RequestError("Missing required parameter: 'messages'.", "messages")
    if not messages:
        raise RequestError("[] is too short - 'messages'", "messages")
    if payload.get("stream_options") is not None and not payload.get("stream"):
        raise RequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    for index, tool in enumerate(payload.get("tools") or []):
        name = (tool.get("function") or {}).get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not _NAME.match(name):
            raise _bad_name(f"tools[{index}].function.name")
    _validate_tool_sequence(messages)
    for index, message in enumerate(messages):
        if "name" in message and not (
            isinstance(message["name"], str) and _NAME.match(message["name"])
        ):
            raise _bad_name(f"messages[{index}].name")


def _bad_name(param: str) -> RequestError:
    return RequestError(
        f"Invalid '{param}': string does not match pattern. "
        "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
        param,
        "invalid_value",
    )


def _validate_tool_sequence(messages: list[Any]) -> None:
    """Every tool call must be answered by tool messages right after it, and only then."""
    pending: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise RequestError(
                f"Invalid value for 'messages[{index}].role'.", f"messages[{index}].role"
            )
        role = message["role"]
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                raise RequestError(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            pending.remove(call_id)
            continue
        if pending:
            raise _unanswered_tool_calls(pending)
        if role == "assistant" and message.get("tool_calls"):
            pending = [call.get("id") for call in message["tool_calls"]]
    if pending:
        raise _unanswered_tool_calls(pending)


def _unanswered_tool_calls(call_ids: list[str]) -> RequestError:
    return RequestError(
        "An assistant message with 'tool_calls' must be followed by tool messages "
        "responding to each 'tool_call_id'. The following tool_call_ids did not have "
        f"response messages: {', '.join(map(str, call_ids))}",
        "messages",
    )
