"""Slack's streaming messages in the fake workspace: ``chat.startStream`` / ``appendStream`` /
``stopStream``.

What the emulator holds the app to, from Slack's method docs and what apps in production
ran into: a stream is a reply in a thread (``thread_ts`` is required); outside a DM it
needs the user watching it (``recipient_user_id`` and ``recipient_team_id``, else the reply
is a blank bubble); ``markdown_text`` is at most 12,000 characters per call; a stream with
no append for ``stream_expiry_s`` (about five minutes at Slack) is no longer one and every
stream call on it answers ``message_not_in_streaming_state``; ``chat.update`` does not edit
a message mid-stream. Rate tiers are enforced per method over a sliding minute
(``chat.appendStream`` Tier 4, start and stop Tier 2), answering HTTP 429 like Slack.

A test can turn the feature off (``refuse_streaming``: every ``chat.startStream`` answers
that error), expire streams at once (``expire_streams``), and read each stream's appends.
"""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.block_kit_rules import find_message_problems
from tests.fakes.slack_messages import MessagesMixin
from tests.fakes.slack_records import JsonDict
from tests.fakes.slack_wire import ApiError

__all__ = ["STREAM_TIERS", "StreamsMixin"]

MARKDOWN_TEXT_LIMIT = 12_000
STREAM_TIERS = {"chat.startStream": 20, "chat.appendStream": 100, "chat.stopStream": 20}


class StreamsMixin(MessagesMixin):
    """The streaming methods of ``SlackApiEmulator`` and what tests read of them."""

    stream_expiry_s: float = 300.0
    streaming_refusal: str | None = None  # error every chat.startStream answers, if set

    def refuse_streaming(self, error: str = "feature_not_enabled") -> None:
        """From now on ``chat.startStream`` fails with ``error`` (no streaming here)."""
        self.streaming_refusal = error

    def expire_streams(self) -> None:
        """Every open stream lapses now, as after minutes without an append."""
        for message in self.messages.values():
            if message.get("streaming"):
                message["stream_active_at"] = float("-inf")

    def streams(self) -> list[JsonDict]:
        """Every message started as a stream (deleted ones included), oldest first."""
        started = [m for m in self.messages.values() if "stream_appends" in m]
        started += [m for m in self.deleted if "stream_appends" in m]
        return sorted(started, key=lambda m: float(m["ts"]))

    def _tier_wait(self, method: str) -> int | None:
        """Seconds to wait (Retry-After) when ``method`` has already been answered its
        tier's number of times in the last minute; None while within it."""
        limit = STREAM_TIERS.get(method)
        if limit is None:
            return None
        now = time.monotonic()
        recent = [c.at for c in self.calls if c.method == method and now - c.at < 60.0 and c.ok]
        if len(recent) < limit:
            return None
        return max(1, int(60.0 - (now - recent[-limit])) + 1)

    def _chat_start_stream(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        thread_ts = str(params.get("thread_ts") or "")
        if not thread_ts:
            self._problem("chat.startStream", "invalid_arguments", ["thread_ts is required"])
            raise ApiError("invalid_arguments")
        if (channel, thread_ts) not in self.messages:
            self._problem("chat.startStream", "thread_not_found", [f"no message {thread_ts}"])
            raise ApiError("thread_not_found")
        if self.streaming_refusal is not None:
            raise ApiError(self.streaming_refusal)
        if not channel.startswith("D"):
            missing = [
                name for name in ("recipient_user_id", "recipient_team_id") if not params.get(name)
            ]
            if missing:
                reason = f"{', '.join(missing)} required to stream outside a DM"
                self._problem("chat.startStream", "invalid_arguments", [reason])
                raise ApiError("invalid_arguments")
        text = self._markdown_text("chat.startStream", params, required=False)
        message = self._new_bot_message({**params, "text": text})
        message.update(
            streaming=True,
            stream_active_at=time.monotonic(),
            stream_recipient=(params.get("recipient_user_id"), params.get("recipient_team_id")),
            stream_appends=[],
        )
        self._store_message(channel, message, thread_ts)
        return {"channel": channel, "ts": message["ts"]}

    def _chat_update(self, params: JsonDict) -> JsonDict:
        """Slack edits no message while it is still a stream: stop it first."""
        try:
            channel = self._resolve_channel(params.get("channel"))
        except ApiError:
            return super()._chat_update(params)  # answers the same error
        message = self.messages.get((channel, str(params.get("ts") or "")))
        if message is not None and self._streaming_now(message):
            self._problem("chat.update", "cant_update_message", ["the message is still streaming"])
            raise ApiError("cant_update_message")
        return super()._chat_update(params)

    def _streaming_now(self, message: JsonDict) -> bool:
        if message.get("streaming") and (
            time.monotonic() - float(message["stream_active_at"]) > self.stream_expiry_s
        ):
            message["streaming"] = False
            message["stream_expired"] = True
        return bool(message.get("streaming"))

    def _chat_append_stream(self, params: JsonDict) -> JsonDict:
        channel, message = self._open_stream("chat.appendStream", params)
        text = self._markdown_text("chat.appendStream", params, required=True)
        message["text"] = message.get("text", "") + text
        message["stream_appends"].append(text)
        message["stream_active_at"] = time.monotonic()
        return {"channel": channel, "ts": message["ts"]}

    def _chat_stop_stream(self, params: JsonDict) -> JsonDict:
        channel, message = self._open_stream("chat.stopStream", params)
        text = self._markdown_text("chat.stopStream", params, required=False)
        if params.get("blocks") is not None:
            # The stream's text is the message's fallback: no `text` argument here.
            error, reasons = find_message_problems(params)
            if error is not None:
                self._problem("chat.stopStream", error, reasons)
                raise ApiError(error, [f"[ERROR] {r}" for r in reasons])
            message["blocks"] = params["blocks"]
        message["text"] = message.get("text", "") + text
        message["streaming"] = False
        message["stream_stopped"] = True
        return {"channel": channel, "ts": message["ts"], "message": _public(message)}

    def _open_stream(self, method: str, params: JsonDict) -> tuple[str, JsonDict]:
        channel = self._resolve_channel(params.get("channel"))
        message = self.messages.get((channel, str(params.get("ts") or "")))
        if message is None:
            raise ApiError("message_not_found")
        if not self._streaming_now(message):
            raise ApiError("message_not_in_streaming_state")
        return channel, message

    def _markdown_text(self, method: str, params: JsonDict, *, required: bool) -> str:
        text = params.get("markdown_text")
        if text is None or text == "":
            if required:
                self._problem(method, "invalid_arguments", ["markdown_text is required"])
                raise ApiError("invalid_arguments")
            return ""
        if not isinstance(text, str) or len(text) > MARKDOWN_TEXT_LIMIT:
            reason = f"markdown_text over {MARKDOWN_TEXT_LIMIT} characters"
            self._problem(method, "msg_too_long", [reason])
            raise ApiError("msg_too_long")
        return text


def _public(message: JsonDict) -> dict[str, Any]:
    hidden = {"channel", "history", "stream_active_at", "stream_recipient", "stream_appends"}
    return {k: v for k, v in message.items() if k not in hidden}
