"""Build and sign requests the way Slack sends them to an app.

End-to-end tests play Slack's part: they post slash commands and interaction payloads to
the app's HTTP endpoint. The app (through Bolt) rejects anything not signed with its
signing secret, and routes by the payload's shape, so both must match Slack exactly:

* ``sign`` computes ``X-Slack-Signature`` as Slack does: ``v0=`` + hex HMAC-SHA256 of
  ``v0:<timestamp>:<raw body>`` keyed with the signing secret.
* ``slash_command``, ``block_actions`` and ``view_submission`` return ``(body, content_type)``
  shaped like Slack's requests: a form for commands, a form field ``payload=<json>`` for
  interactions.
* ``SlackRequestSender`` posts them and reports status, body and elapsed time, since Slack
  gives an app 3 seconds to acknowledge.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp

__all__ = [
    "FORM_CONTENT_TYPE",
    "SlackRequestSender",
    "block_actions",
    "new_trigger_id",
    "sign",
    "slash_command",
    "view_submission",
]

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
DEFAULT_VERIFICATION_TOKEN = "legacy-verification-token"
# Port 9 (discard) refuses connections at once: an app that answers a payload whose test
# forgot to pass a response_url fails loudly instead of trying to reach Slack.
UNSET_RESPONSE_URL = "http://127.0.0.1:9/response/unset"

JsonDict = dict[str, Any]
Payload = tuple[bytes, str]

_trigger_counter = itertools.count(1)


def sign(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack adds to every request: the timestamp and the v0 signature over it."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def new_trigger_id() -> str:
    """A unique trigger id; Slack's triggers are single-use, so builders never reuse one."""
    number = next(_trigger_counter)
    return f"{1_000_000_000 + number}.1700000000.{number:032x}"


# ---------------------------------------------------------------------------
# Payload builders
# ---------------------------------------------------------------------------


def slash_command(
    *,
    command: str = "/autogen",
    text: str = "",
    user_id: str = "U1",
    user_name: str = "alice",
    channel_id: str = "C1",
    channel_name: str = "general",
    team_id: str = "T1",
    team_domain: str = "autogen-test",
    trigger_id: str | None = None,
    response_url: str = UNSET_RESPONSE_URL,
    api_app_id: str = "AAPP",
    token: str = DEFAULT_VERIFICATION_TOKEN,
    enterprise_id: str | None = None,
) -> Payload:
    """A slash command invocation, form-encoded with the fields Slack sends."""
    fields: dict[str, str] = {
        "token": token,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or new_trigger_id(),
    }
    if enterprise_id:
        fields["enterprise_id"] = enterprise_id
    return urlencode(fields).encode(), FORM_CONTENT_TYPE


def block_actions(
    *,
    action_id: str,
    value: str | None = None,
    block_id: str | None = None,
    user_id: str = "U1",
    user_name: str = "alice",
    channel_id: str = "C1",
    channel_name: str = "general",
    message_ts: str | None = None,
    message: Mapping[str, Any] | None = None,
    view: Mapping[str, Any] | None = None,
    team_id: str = "T1",
    team_domain: str = "autogen-test",
    trigger_id: str | None = None,
    response_url: str = UNSET_RESPONSE_URL,
    api_app_id: str = "AAPP",
    token: str = DEFAULT_VERIFICATION_TOKEN,
    is_ephemeral: bool = False,
    state_values: Mapping[str, Mapping[str, Any]] | None = None,
    action_fields: Mapping[str, Any] | None = None,
) -> Payload:
    """A click on an interactive element, in a message (default) or in a modal (``view``).

    Pass the stored ``message`` from ``SlackApiEmulator.messages`` to click a button the app
    really posted: the button's ``block_id``, ``value``, type and label are then taken from
    it, as well as the channel and ts. ``action_fields`` adds fields such as
    ``selected_option`` for menus.
    """
    element, found_block_id = _find_element(message or view or {}, action_id)
    action = _action(action_id, block_id or found_block_id, value, element, action_fields)
    payload: JsonDict = {
        "type": "block_actions",
        "user": _user(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "actions": [action],
    }
    if view is not None:
        payload.update(_view_container(view, state_values))
    else:
        channel_id = str((message or {}).get("channel") or channel_id)
        ts = str(message_ts or (message or {}).get("ts") or "1700000000.000100")
        payload.update(
            container=_message_container(ts, channel_id, message, is_ephemeral),
            channel={"id": channel_id, "name": channel_name},
            state={"values": _state(state_values)},
            response_url=response_url,
        )
        if not is_ephemeral:
            payload["message"] = _message_payload(message, ts, team_id)
    return _form_payload(payload)


def view_submission(
    *,
    callback_id: str | None = None,
    state_values: Mapping[str, Mapping[str, Any]] | None = None,
    private_metadata: str | None = None,
    view: Mapping[str, Any] | None = None,
    view_id: str | None = None,
    user_id: str = "U1",
    user_name: str = "alice",
    team_id: str = "T1",
    team_domain: str = "autogen-test",
    trigger_id: str | None = None,
    api_app_id: str = "AAPP",
    token: str = DEFAULT_VERIFICATION_TOKEN,
    response_urls: list[JsonDict] | None = None,
) -> Payload:
    """A modal's Submit press. ``state_values`` maps block_id -> action_id -> value.

    A value may be Slack's full dict (``{"type": "plain_text_input", "value": "x"}``) or a
    plain string, taken as a text input's value. Pass the ``view`` the app opened (e.g.
    ``slack.views_opened[-1]``) to submit exactly that modal.
    """
    base = dict(view) if view is not None else _default_view(view_id or "V0001", team_id)
    if callback_id is not None:
        base["callback_id"] = callback_id
    if private_metadata is not None:
        base["private_metadata"] = private_metadata
    if view_id is not None:
        base["id"] = view_id
    base["state"] = {"values": _state(state_values)}
    payload: JsonDict = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": _user(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": base,
        "response_urls": response_urls or [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _form_payload(payload)


def _form_payload(payload: JsonDict) -> Payload:
    """Interactions arrive as one form field holding the JSON document."""
    encoded = urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
    return encoded.encode(), FORM_CONTENT_TYPE


def _user(user_id: str, user_name: str, team_id: str) -> JsonDict:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def _state(values: Mapping[str, Mapping[str, Any]] | None) -> JsonDict:
    """Normalise state shorthand (plain strings) into Slack's state.values shape."""
    state: JsonDict = {}
    for block_id, actions in (values or {}).items():
        state[block_id] = {
            action_id: (
                {"type": "plain_text_input", "value": value} if isinstance(value, str) else value
            )
            for action_id, value in actions.items()
        }
    return state


def _find_element(surface: Mapping[str, Any], action_id: str) -> tuple[JsonDict, str | None]:
    """Locate the element with ``action_id`` in a message or view, and its block's id."""
    for block in surface.get("blocks") or []:
        if not isinstance(block, dict):
            continue
        candidates = list(block.get("elements") or [])
        candidates += [block[k] for k in ("accessory", "element") if isinstance(block.get(k), dict)]
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return element, block.get("block_id")
    return {}, None


def _action(
    action_id: str,
    block_id: str | None,
    value: str | None,
    element: Mapping[str, Any],
    extra: Mapping[str, Any] | None,
) -> JsonDict:
    """The ``actions[0]`` entry Slack sends for a click on ``element``."""
    action: JsonDict = {
        "action_id": action_id,
        "block_id": block_id or "generated_block_id",
        "type": element.get("type", "button"),
        "action_ts": f"{time.time():.6f}",
    }
    if action["type"] == "button":
        action["text"] = element.get("text") or {"type": "plain_text", "text": "Button"}
        chosen = value if value is not None else element.get("value")
        if chosen is not None:
            action["value"] = chosen
        if element.get("style"):
            action["style"] = element["style"]
    elif action["type"] == "feedback_buttons" and value in ("positive", "negative"):
        # Slack sends the value of the button that was clicked, thumbs up or down.
        action["value"] = (element.get(f"{value}_button") or {}).get("value", "")
    elif value is not None:
        action["value"] = value
    action.update(extra or {})
    return action


def _message_container(
    ts: str, channel_id: str, message: Mapping[str, Any] | None, is_ephemeral: bool
) -> JsonDict:
    container: JsonDict = {
        "type": "message",
        "message_ts": ts,
        "channel_id": channel_id,
        "is_ephemeral": is_ephemeral,
    }
    thread_ts = (message or {}).get("thread_ts")
    if thread_ts:
        container["thread_ts"] = thread_ts
    return container


def _message_payload(message: Mapping[str, Any] | None, ts: str, team_id: str) -> JsonDict:
    """The clicked message as Slack embeds it, without the emulator's bookkeeping."""
    if message is None:
        return {"type": "message", "ts": ts, "text": "", "team": team_id}
    return {k: v for k, v in message.items() if k not in ("channel", "history")}


def _view_container(view: Mapping[str, Any], state_values: Any) -> JsonDict:
    embedded = {**view, "state": {"values": _state(state_values)}}
    container = {"type": "view", "view_id": view.get("id", "V0001")}
    return {"container": container, "view": embedded}


def _default_view(view_id: str, team_id: str) -> JsonDict:
    """A minimal modal as Slack echoes it, for submissions that do not pass their own."""
    return {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": [],
        "private_metadata": "",
        "callback_id": "",
        "hash": f"{view_id}-1",
        "title": {"type": "plain_text", "text": "Modal"},
        "submit": {"type": "plain_text", "text": "Submit"},
        "close": None,
        "clear_on_close": False,
        "notify_on_close": False,
        "previous_view_id": None,
        "root_view_id": view_id,
        "external_id": "",
        "app_installed_team_id": team_id,
    }


# ---------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------


class SlackRequestSender:
    """Posts signed requests to the app like Slack does, timing each answer.

    One aiohttp session is reused across posts; use ``async with`` or call ``close()``.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SlackRequestSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self,
        url: str,
        body: bytes,
        content_type: str,
        signing_secret: str,
        timestamp: int | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        extra_headers: Mapping[str, str] | None = None,
    ) -> tuple[int, str, float]:
        """Sign and send ``body``; returns (HTTP status, response text, seconds taken).

        ``retry_num`` marks the request as Slack's n-th redelivery, which apps often use
        to avoid doing the same work twice.
        """
        headers = {"Content-Type": content_type, **sign(signing_secret, body, timestamp)}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        headers.update(extra_headers or {})
        session = self._open_session()
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            text = await response.text()
        return response.status, text, time.perf_counter() - started

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def event_callback(
    event: Mapping[str, Any],
    *,
    team_id: str = "T1",
    api_app_id: str = "AAPP",
    event_id: str | None = None,
    bot_user_id: str = "UBOT",
) -> JsonDict:
    """An Events API callback as Slack sends it (over HTTP as JSON, or as a Socket Mode
    envelope's payload): the event, its id and time, and whom it is authorised for."""
    return {
        "token": DEFAULT_VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or f"Ev{int(time.time() * 1000):013d}",
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": team_id, "user_id": bot_user_id, "is_bot": True, "enterprise_id": None}
        ],
        "is_ext_shared_channel": False,
    }


def app_mention(
    *, text: str, ts: str, user: str = "U1", channel: str = "C1", **fields: Any
) -> JsonDict:
    """The `app_mention` event of a message that mentions the app."""
    return {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "client_msg_id": f"msg-{ts}",
        **fields,
    }


def json_payload(payload: JsonDict) -> Payload:
    """Events arrive as a JSON body."""
    return json.dumps(payload, separators=(",", ":")).encode(), "application/json"
