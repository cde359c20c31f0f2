"""The messages and channels of the fake workspace: ``chat.*`` and ``conversations.info``.

``MessagesMixin`` answers the message methods the way Slack does (channel membership,
threads, edits by the bot only, permalinks) and gives tests views of what was posted
(``thread``, ``channel_messages``) and a way to seed human messages (``add_user_message``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.fakes.block_kit_rules import find_message_problems
from tests.fakes.slack_emulator_base import EmulatorBase
from tests.fakes.slack_records import JsonDict
from tests.fakes.slack_wire import ApiError, has_content, truthy

__all__ = ["MessagesMixin", "apply_update"]


class MessagesMixin(EmulatorBase):
    """Message and channel methods of ``SlackApiEmulator``, and the stored messages' views."""

    def thread(self, channel: str, thread_ts: str) -> list[JsonDict]:
        """Replies in a thread, oldest first, without the parent message."""
        replies = [
            message
            for (chan, ts), message in self.messages.items()
            if chan == channel and message.get("thread_ts") == thread_ts and ts != thread_ts
        ]
        return sorted(replies, key=lambda m: _ts_key(m["ts"]))

    def channel_messages(self, channel: str) -> list[JsonDict]:
        """Top-level messages of a channel (no thread replies), oldest first."""
        top = [
            message
            for (chan, ts), message in self.messages.items()
            if chan == channel and message.get("thread_ts") in (None, ts)
        ]
        return sorted(top, key=lambda m: _ts_key(m["ts"]))

    def add_user_message(
        self, channel: str, text: str, *, user: str = "U1", thread_ts: str | None = None
    ) -> str:
        """Seed a message written by a human, e.g. a thread parent the app replies to."""
        ts = self._next_ts()
        message: JsonDict = {"type": "message", "user": user, "text": text, "ts": ts}
        self._store_message(channel, message, thread_ts)
        return ts

    def _chat_post_message(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        self._check_message_payload("chat.postMessage", params, require_content=True)
        thread_ts = params.get("thread_ts") or None
        if thread_ts and (channel, thread_ts) not in self.messages:
            reason = f"thread_ts {thread_ts} matches no message in {channel}"
            self._problem("chat.postMessage", "thread_not_found", [reason])
        message = self._new_bot_message(params)
        self._store_message(channel, message, thread_ts)
        if thread_ts and truthy(params.get("reply_broadcast")):
            message["subtype"] = "thread_broadcast"
        return {"channel": channel, "ts": message["ts"], "message": _public(message)}

    def _chat_update(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        message = self.messages.get((channel, str(params.get("ts") or "")))
        if message is None:
            raise ApiError("message_not_found")
        if message.get("user") != self.bot_user_id:
            raise ApiError("cant_update_message")
        self._check_message_payload("chat.update", params, require_content=True)
        apply_update(message, params)
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": _public(message),
        }

    def _chat_delete(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        ts = str(params.get("ts") or "")
        message = self.messages.get((channel, ts))
        if message is None:
            raise ApiError("message_not_found")
        if message.get("user") != self.bot_user_id:
            raise ApiError("cant_delete_message")
        del self.messages[(channel, ts)]
        self.deleted.append(message)
        return {"channel": channel, "ts": ts}

    def _chat_post_ephemeral(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        if not params.get("user"):
            raise ApiError("user_not_in_channel")
        self._check_message_payload("chat.postEphemeral", params, require_content=True)
        entry: JsonDict = {
            "channel": channel,
            "user": params["user"],
            "text": params.get("text") or "",
            "blocks": params.get("blocks"),
            "thread_ts": params.get("thread_ts"),
            "message_ts": self._next_ts(),
        }
        self.ephemerals.append(entry)
        return {"message_ts": entry["message_ts"]}

    def _chat_get_permalink(self, params: JsonDict) -> JsonDict:
        channel = str(params.get("channel") or "")
        ts = str(params.get("message_ts") or "")
        message = self.messages.get((channel, ts))
        if message is None:
            raise ApiError("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        parent = message.get("thread_ts")
        if parent and parent != ts:
            link += f"?thread_ts={parent}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _conversations_info(self, params: JsonDict) -> JsonDict:
        channel = str(params.get("channel") or "")
        is_member = channel in self.member_channels
        if not channel.startswith(("C", "G", "D")) or (not is_member and channel[0] != "C"):
            raise ApiError("channel_not_found")
        return {
            "channel": {
                "id": channel,
                "name": self.channel_names.get(channel, f"channel-{channel.lower()}"),
                "is_channel": channel.startswith("C"),
                "is_group": channel.startswith("G"),
                "is_im": channel.startswith("D"),
                "is_private": channel.startswith("G"),
                "is_archived": False,
                "is_member": is_member,
                "created": 1_600_000_000,
                "context_team_id": self.team_id,
            }
        }

    def _resolve_channel(self, channel: Any) -> str:
        """Map a channel argument to a channel id the bot may post in, or fail like Slack."""
        if not isinstance(channel, str) or not channel:
            raise ApiError("channel_not_found")
        if channel.startswith(("U", "W")):
            dm = f"D{channel}"  # posting to a user id opens the app's DM with them
            self.member_channels.add(dm)
            return dm
        if channel in self.member_channels:
            return channel
        if channel.startswith(("C", "G", "D")):
            raise ApiError("not_in_channel")
        raise ApiError("channel_not_found")

    def _check_message_payload(
        self, method: str, params: JsonDict, *, require_content: bool
    ) -> None:
        """Raise the Slack error for a bad message payload and log it as a problem."""
        error, reasons = find_message_problems(params)
        if error is None and require_content and not has_content(params):
            raise ApiError("no_text")
        if error is not None:
            self._problem(method, error, reasons)
            raise ApiError(error, [f"[ERROR] {r}" for r in reasons])
        self._warn_missing_fallback(method, params)

    def _new_bot_message(self, params: JsonDict) -> JsonDict:
        message: JsonDict = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": params.get("text") or "",
            "ts": self._next_ts(),
        }
        for key in ("blocks", "attachments", "metadata"):
            if params.get(key) is not None:
                message[key] = params[key]
        self._customize(message, params)
        return message

    def _customize(self, message: JsonDict, params: JsonDict) -> None:
        """`username` and `icon_emoji` / `icon_url` change how a bot message is shown, but
        only for a token with chat:write.customize; without it Slack posts as the app."""
        wanted = [key for key in ("username", "icon_emoji", "icon_url") if params.get(key)]
        if not wanted:
            return
        if "chat:write.customize" not in self.scopes:
            self.ignored_customizations.append({key: params[key] for key in wanted})
            return
        username = str(params.get("username") or "")
        if len(username) > 80:
            self._problem("chat.postMessage", "invalid_arguments", ["username over 80 characters"])
        if username:
            message["username"] = username
        emoji, url = params.get("icon_emoji"), params.get("icon_url")
        if emoji and not (str(emoji).startswith(":") and str(emoji).endswith(":")):
            self._problem("chat.postMessage", "invalid_arguments", [f"icon_emoji {emoji!r}"])
        if emoji:
            message["icons"] = {"emoji": emoji}
        elif url:
            message["icons"] = {"image_48": url}

    def _store_message(self, channel: str, message: JsonDict, thread_ts: str | None) -> None:
        """Save a message, attaching it to its thread parent the way Slack threads work."""
        message.update(channel=channel, history=[])
        if thread_ts:
            parent = self._thread_parent(channel, thread_ts)
            message["thread_ts"] = parent
            if (channel, parent) in self.messages:
                self._note_reply(self.messages[(channel, parent)], message["ts"])
        self.messages[(channel, message["ts"])] = message

    def _thread_parent(self, channel: str, thread_ts: str) -> str:
        """A reply's ts given as thread_ts means its parent's thread."""
        target = self.messages.get((channel, thread_ts))
        if target is None:
            return thread_ts
        return str(target.get("thread_ts") or thread_ts)

    @staticmethod
    def _note_reply(parent: JsonDict, reply_ts: str) -> None:
        parent["thread_ts"] = parent["ts"]
        parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
        parent["latest_reply"] = reply_ts


def apply_update(message: JsonDict, params: Mapping[str, Any]) -> None:
    """Replace text/blocks; fields left out keep their value, as chat.update does."""
    previous = {k: message.get(k) for k in ("text", "blocks", "attachments")}
    message["history"].append(previous)
    for key in ("text", "blocks", "attachments"):
        if key in params:
            message[key] = params[key]
    message["edited"] = {"user": message.get("user"), "ts": message["ts"]}


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def _public(message: JsonDict) -> JsonDict:
    """A stored message without the emulator's own bookkeeping, as Slack returns it."""
    return {k: v for k, v in message.items() if k not in ("channel", "history")}
