"""A reply in a run's thread (a `message` event): handed to the team as human input.

Slack sends every message of the channels the app is in; only a person's plain reply in a
thread can matter, so everything else (the app's own posts and other bots', edits and
deletions, thread broadcasts, channel messages) is dropped before the database is asked.
Whose reply counts and what it does is the runner's business (`runner.thread_replies`); the
person is told privately what became of it, and nobody else hears a thing. A leading
mention of the app is dropped from the text (the `app_mention` of the same message starts
nothing in a run's thread).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import services_of
from runner.thread_replies import Steering, message_key

log = logging.getLogger(__name__)

ACKNOWLEDGEMENTS = {
    Steering.HEARD: "Got it: the team reads your reply at its next turn.",
    Steering.REVISING: "Your reply answers the waiting decision: the team revises with it.",
    Steering.CONTINUED: "The run goes on from your reply, in this thread.",
    Steering.NOT_CONTINUABLE: (
        "This run ended before its team said anything, so there is nothing to continue. "
        "Start a new one with `/autogen <task>`."
    ),
}
HEARD_SUBTYPES = (None, "file_share")  # a reply with a file attached is a reply


def thread_reply(
    event: dict[str, Any], bot_user_id: str | None = None
) -> tuple[str, str, str, str] | None:
    """(channel, thread_ts, user, text) of a person's reply in a thread, else None. A
    leading mention of the app (`bot_user_id`) is dropped; anyone else's stays."""
    if (
        event.get("subtype") not in HEARD_SUBTYPES
        or event.get("bot_id")
        or event.get("bot_profile")
    ):
        return None  # an edit, a deletion, a broadcast, a join; or a bot's own message
    channel, thread_ts, ts = event.get("channel"), event.get("thread_ts"), event.get("ts")
    user, text = event.get("user"), event.get("text")
    if not (channel and thread_ts and ts and user and isinstance(text, str)) or thread_ts == ts:
        return None  # not a reply in a thread
    if bot_user_id:
        own = re.compile(rf"^(\s*<@{re.escape(bot_user_id)}(?:\|[^>]*)?>\s*)+")
        text = own.sub("", text)
    return str(channel), str(thread_ts), str(user), text.strip()


def message_keys(event: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """The ids one message may be delivered under: Slack's event id (the same on every
    retry) and the message's own (its client_msg_id, and its channel and ts)."""
    keys = [message_key(str(event["channel"]), str(event["ts"]))]
    if event.get("client_msg_id"):
        keys.append(f"msg:{event['client_msg_id']}")
    if body.get("event_id"):
        keys.append(f"event:{body['event_id']}")
    return keys


async def message_event(
    event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    reply = thread_reply(event, context.bot_user_id)
    if reply is None:
        return
    channel, thread_ts, user, text = reply
    steering = await services_of(context).runs.thread_replies.reply(
        channel_id=channel,
        thread_ts=thread_ts,
        user_id=user,
        text=text,
        keys=message_keys(event, body),
    )
    answer = ACKNOWLEDGEMENTS.get(steering)
    if answer is None:
        return
    try:
        await client.chat_postEphemeral(
            channel=channel, user=user, thread_ts=thread_ts, text=answer
        )
    except SlackApiError as exc:  # the reply was acted on either way
        log.warning("reply acknowledgement not delivered (%s)", exc.response.get("error"))
