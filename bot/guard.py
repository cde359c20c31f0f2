"""What a request to /slack/events must be before Bolt sees it: signed by Slack, recent,
well-formed, of a shape the listeners can read, and for something the app handles.

Bolt verifies signatures too, but a header it cannot parse, a body that is not UTF-8 or a
payload whose `user` is a number reaches code that raises, and the answer is a 500 with a
traceback in the log (Bolt also logs a failed request's raw body, which may carry a key).
These checks answer all of that with a 4xx and one log line before anything runs. A
well-signed request for something the app does not handle (another command, a button it
never showed, an event it does not subscribe to) gets the empty 200 Slack expects, also
without reaching Bolt, whose first request would otherwise call Slack's `auth.test`.
They are pure functions, so the HTTP server and the Socket Mode path (`payload_problem`)
share them and they are tested without a network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from bot import ids

MAX_BODY_BYTES = 1_048_576  # Slack's payloads are far smaller; a modal state is a few KB
MAX_SKEW_S = 300  # Slack's own advice: refuse requests more than five minutes off
MAX_DEPTH = 64  # Slack's deepest payloads (a modal's blocks in a view) nest about a dozen
CONTENT_TYPES = ("application/x-www-form-urlencoded", "application/json")
SIGNED_HEADERS = ("x-slack-signature", "x-slack-request-timestamp")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SLACK_ID = re.compile(r"[A-Z][A-Z0-9]{0,31}")  # T…, U…, W…, C…, G…, D…, E…


@dataclass(frozen=True)
class Refusal:
    """Why a request goes no further: the HTTP status to answer (4xx, or 200 for a request
    the app declines) and a short reason (safe to log: it never quotes the request)."""

    status: int
    reason: str


DECLINED = 200


@dataclass(frozen=True)
class Checked:
    """A request that may go to Bolt: its body as text (what the signature covers) and the
    payload parsed from it (what Bolt must use: see `parse`)."""

    text: str
    payload: dict[str, Any]


def check_request(
    headers: Mapping[str, list[str]], body: bytes, *, signing_secret: str, now: float
) -> Checked | Refusal:
    """The request checked and parsed, or why it goes no further. `headers` are
    lower-cased names with every value received (a repeated header is refused)."""
    for name in (*SIGNED_HEADERS, "content-type"):
        if len(headers.get(name, [])) > 1:
            return Refusal(400, f"repeated {name} header")
    if len(body) > MAX_BODY_BYTES:
        return Refusal(413, "body too large")
    refused = _signature_problem(headers, body, signing_secret, now)
    if refused is not None:
        return refused
    content_type = (headers.get("content-type") or [""])[0].split(";")[0].strip().lower()
    if content_type not in CONTENT_TYPES:
        return Refusal(415, "not form-encoded or JSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(400, "body is not UTF-8")
    try:
        payload = parse(text, content_type)
    except (ValueError, RecursionError):
        return Refusal(400, "body does not parse")
    if not isinstance(payload, dict):
        return Refusal(400, "payload is not an object")
    problem = payload_problem(payload)
    if problem is not None:
        return Refusal(400, problem)
    if not handled(payload):
        return Refusal(DECLINED, "not a request the app handles")
    return Checked(text, payload)


def parse(text: str, content_type: str) -> Any:
    """A JSON body, or a form whose `payload` field holds the JSON (interactivity), or the
    form's fields (a slash command). Bolt 1.30's own parser takes any form body that merely
    contains the word "payload" (a task, a channel name) for an interaction without one and
    reads it as empty, so its result is not used."""
    if content_type == "application/json":
        return json.loads(text)
    fields = dict(parse_qsl(text, keep_blank_values=True))
    return json.loads(fields["payload"]) if "payload" in fields else fields


def handled(payload: dict[str, Any]) -> bool:
    """Whether a listener of the app answers this (well-formed) payload."""
    if "command" in payload:
        return payload["command"] == ids.COMMAND
    kind = payload.get("type")
    if kind == "block_actions":
        return all(ids.handles_action(action["action_id"]) for action in payload["actions"])
    if kind == "view_submission":
        return ids.handles_view(payload["view"]["callback_id"])
    if kind == "event_callback":
        event = payload.get("event")
        return isinstance(event, dict) and ids.handles_event(str(event.get("type", "")))
    return kind == "url_verification"  # Bolt answers the challenge itself


def _signature_problem(
    headers: Mapping[str, list[str]], body: bytes, secret: str, now: float
) -> Refusal | None:
    signature = (headers.get("x-slack-signature") or [""])[0]
    timestamp = (headers.get("x-slack-request-timestamp") or [""])[0]
    if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
        return Refusal(401, "missing or malformed signature headers")
    if abs(now - int(timestamp)) > MAX_SKEW_S:
        return Refusal(401, "stale timestamp")
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return Refusal(401, "bad signature")
    return None


# Keys Bolt and the listeners read, by the JSON type each must have when present.
_OBJECTS = ("user", "container", "view", "message", "event", "state")
_OBJECTS_OR_NULL = ("team", "channel")
_LISTS_OF_OBJECTS = ("actions", "authorizations", "response_urls")
_STRINGS = (
    "type",
    "team_id",
    "user_id",
    "channel_id",
    "enterprise_id",
    "api_app_id",
    "trigger_id",
    "response_url",
    "command",
    "text",
    "token",
    "challenge",
    "event_id",
    "callback_id",
)


def payload_problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with a parsed payload's shape, or None. Kinds the app listens to are
    checked field by field; any payload must have the JSON types Bolt expects and no NUL
    character (Slack never sends one; PostgreSQL refuses it in text)."""
    problem = _depth_or_nul_problem(payload) or _common_problem(payload)
    if problem is not None:
        return problem
    if "command" in payload:
        return _slash_command_problem(payload)
    kind = payload.get("type")
    if kind == "block_actions":
        return _block_actions_problem(payload)
    if kind == "view_submission":
        return _view_submission_problem(payload)
    if kind == "event_callback":
        return _event_problem(payload)
    if kind == "url_verification" and not isinstance(payload.get("challenge"), str):
        return "url_verification without a challenge"
    return None


def _event_problem(payload: dict[str, Any]) -> str | None:
    """An event callback the app reads: a typed event; an @mention's fields are strings."""
    event = payload.get("event") or {}
    if not isinstance(event.get("type"), str):
        return "event without a type"
    if event["type"] == "app_home_opened":
        if not isinstance(event.get("user"), str) or not isinstance(event.get("tab", ""), str):
            return "app_home_opened without a user"
        return _team_problem(payload)
    if event["type"] == "message":
        return _message_problem(payload)
    if event["type"] != "app_mention":
        return None
    if isinstance(event.get("bot_id"), str) and event["bot_id"]:
        return None  # a bot's (or a webhook's) mention: the listener declines it, with a 200
    for key in ("user", "channel", "ts", "text"):
        if not isinstance(event.get(key), str) or not event[key]:
            return f"app_mention without a {key}"
    for key in ("thread_ts", "bot_id", "subtype", "team"):
        if key in event and not isinstance(event[key], str):
            return f"app_mention {key} is not a string"
    return _team_problem(payload)


def _message_problem(payload: dict[str, Any]) -> str | None:
    """A message event's fields the listener reads are strings (or absent)."""
    event = payload["event"]
    for key in ("subtype", "bot_id", "channel", "user", "ts", "thread_ts", "text", "client_msg_id"):
        if event.get(key) is not None and not isinstance(event[key], str):
            return f"message {key} is not a string"
    if payload.get("event_id") is not None and not isinstance(payload["event_id"], str):
        return "event_id is not a string"
    return None  # the listener reads no team id: one missing is declined there, with a 200


def _team_problem(payload: dict[str, Any]) -> str | None:
    if not isinstance(payload.get("team_id"), str) or not _SLACK_ID.fullmatch(payload["team_id"]):
        return "event without a team id"
    return None


def _depth_or_nul_problem(payload: dict[str, Any]) -> str | None:
    """Walk the whole payload without recursion (a deep one must not exhaust the stack)."""
    pending: list[tuple[Any, int]] = [(payload, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            return "nested too deeply"
        if isinstance(value, str) and "\x00" in value:
            return "a NUL character"
        if isinstance(value, dict):
            pending.extend((key, depth) for key in value)
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
    return None


def _common_problem(payload: dict[str, Any]) -> str | None:
    for key in _STRINGS:
        if key in payload and not isinstance(payload[key], str):
            return f"{key} is not a string"
    for key in _OBJECTS:
        if key in payload and not isinstance(payload[key], dict):
            return f"{key} is not an object"
    for key in _OBJECTS_OR_NULL:
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            return f"{key} is not an object"
    if not isinstance(payload.get("enterprise"), dict | str | None):
        return "enterprise is not an object"
    for key in (*_OBJECTS, *_OBJECTS_OR_NULL, "enterprise"):
        value = payload.get(key)
        if isinstance(value, dict) and "id" in value and not isinstance(value["id"], str):
            return f"{key}.id is not a string"
    for key in _LISTS_OF_OBJECTS:
        value = payload.get(key)
        if key in payload and not (
            isinstance(value, list) and all(isinstance(item, dict) for item in value)
        ):
            return f"{key} is not a list of objects"
    return None


def _slack_id(value: Any) -> bool:
    return isinstance(value, str) and _SLACK_ID.fullmatch(value) is not None


def _slash_command_problem(payload: dict[str, Any]) -> str | None:
    if not str(payload["command"]).startswith("/"):
        return "command does not start with /"
    for key in ("team_id", "user_id", "channel_id"):
        if not _slack_id(payload.get(key)):
            return f"command without a valid {key}"
    if not payload.get("response_url") or not payload.get("trigger_id"):
        return "command without response_url or trigger_id"
    return None


def _block_actions_problem(payload: dict[str, Any]) -> str | None:
    if not _slack_id((payload.get("user") or {}).get("id")):
        return "block_actions without a user id"
    actions = payload.get("actions") or []
    if not actions:
        return "block_actions without actions"
    for action in actions:
        if not isinstance(action.get("action_id"), str):
            return "action without an action_id"
        if "value" in action and not isinstance(action["value"], str):
            return "action value is not a string"
    if not payload.get("trigger_id"):
        return "block_actions without a trigger_id"
    return None


def _view_submission_problem(payload: dict[str, Any]) -> str | None:
    if not _slack_id((payload.get("user") or {}).get("id")):
        return "view_submission without a user id"
    view = payload.get("view") or {}
    if not isinstance(view.get("callback_id"), str):
        return "view without a callback_id"
    if not isinstance(view.get("private_metadata", ""), str):
        return "view private_metadata is not a string"
    state = view.get("state", {})
    values = state.get("values", {}) if isinstance(state, dict) else None
    if not isinstance(values, dict):
        return "view state is not an object"
    for block in values.values():
        if not isinstance(block, dict) or not all(isinstance(v, dict) for v in block.values()):
            return "view state values are not objects"
    return None
