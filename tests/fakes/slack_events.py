"""Message events from the fake workspace, delivered as Slack delivers them.

With ``message.channels`` / ``message.groups`` subscriptions Slack sends the app a
``message`` event for every message in a channel it is in: people's messages and replies
(with ``client_msg_id``; a reply carries ``thread_ts`` and ``parent_user_id``), the app's own
posts (``bot_id``, ``bot_profile``), edits (``subtype: message_changed``, the new message
nested) and replies also sent to the channel (``subtype: thread_broadcast``). Each comes in
an ``event_callback`` with an ``event_id``; a redelivery keeps the id and says which retry it
is (``X-Slack-Retry-Num`` over HTTP, ``retry_attempt`` in a Socket Mode envelope).

A test makes a person write (``human_message``), or picks any stored message
(``message_event``, ``edit_event``), and hands the event to ``send_event``: over the Socket
Mode connection when the app is connected, else as a signed HTTP request to the URL given
to ``deliver_events_to``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import aiohttp

from tests.fakes.slack_records import JsonDict
from tests.fakes.slack_signing import event_callback, sign
from tests.fakes.slack_socket_mode import SocketModeMixin
from tests.fakes.slack_streams import StreamsMixin

__all__ = ["EventsMixin"]

_event_counter = itertools.count(1)


class EventsMixin(SocketModeMixin, StreamsMixin):
    """Message events of ``SlackApiEmulator``: its messages, sent over its socket or HTTP."""

    events_url: str | None = None
    events_signing_secret: str | None = None

    def deliver_events_to(self, url: str, signing_secret: str) -> None:
        """Send events over HTTP to ``url``, signed with ``signing_secret`` (HTTP mode)."""
        self.events_url, self.events_signing_secret = url, signing_secret

    def human_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U1",
        thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> JsonDict:
        """A person writes in ``channel`` (in a thread with ``thread_ts``); the message is
        stored like any other and its ``message`` event returned."""
        message: JsonDict = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": self._next_ts(),
            "team": self.team_id,
            "client_msg_id": str(uuid.uuid4()),
            "blocks": [_rich_text(text)],
        }
        if broadcast:
            message["subtype"] = "thread_broadcast"
        self._store_message(channel, message, thread_ts)
        return self.message_event(channel, message["ts"])

    def message_event(self, channel: str, ts: str) -> JsonDict:
        """The ``message`` event Slack sends for a stored message (the app's own included)."""
        message = self.messages[(channel, ts)]
        event = {
            k: v
            for k, v in message.items()
            if k not in ("channel", "history") and not k.startswith("stream")
        }
        event.update(channel=channel, event_ts=ts, channel_type=_channel_type(channel))
        if message.get("bot_id"):
            event["bot_profile"] = {
                "id": message["bot_id"],
                "app_id": self.app_id,
                "name": "AutoGen",
            }
        parent_ts = message.get("thread_ts")
        if parent_ts and parent_ts != ts:
            parent = self.messages.get((channel, parent_ts), {})
            event["parent_user_id"] = parent.get("user", "")
        else:
            event.pop("thread_ts", None)
            event.pop("reply_count", None)
            event.pop("latest_reply", None)
        return event

    def edit_event(self, channel: str, ts: str, text: str) -> JsonDict:
        """A person edits their message: ``message_changed``, the edited message nested."""
        previous = self.message_event(channel, ts)
        self.messages[(channel, ts)]["text"] = text
        edited = {**previous, "text": text, "edited": {"user": previous.get("user"), "ts": ts}}
        return {
            "type": "message",
            "subtype": "message_changed",
            "channel": channel,
            "hidden": True,
            "ts": self._next_ts(),
            "event_ts": ts,
            "message": edited,
            "previous_message": previous,
            "channel_type": _channel_type(channel),
        }

    async def send_event(
        self, event: JsonDict, *, event_id: str | None = None, retry_num: int | None = None
    ) -> Any:
        """Deliver ``event`` to the app; the Socket Mode ack, or the HTTP status."""
        payload = event_callback(
            event,
            team_id=self.team_id,
            api_app_id=self.app_id,
            event_id=event_id or f"Ev{next(_event_counter):011d}",
            bot_user_id=self.bot_user_id,
        )
        if self.socket_connected:
            return await self.socket_send(
                "events_api",
                payload,
                retry_attempt=retry_num,
                retry_reason="timeout" if retry_num else None,
            )
        if self.events_url is None or self.events_signing_secret is None:
            raise RuntimeError("no Socket Mode connection and no deliver_events_to URL")
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **sign(self.events_signing_secret, body)}
        if retry_num:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.events_url, data=body, headers=headers) as response,
        ):
            await response.read()
            return response.status


def _channel_type(channel: str) -> str:
    return {"C": "channel", "G": "group", "D": "im"}.get(channel[:1], "channel")


def _rich_text(text: str) -> JsonDict:
    """The rich_text block Slack's clients attach to what a person types."""
    return {
        "type": "rich_text",
        "block_id": uuid.uuid4().hex[:5],
        "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
    }
