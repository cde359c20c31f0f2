"""Tell one person something privately, in the channel they clicked in."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


async def tell(client: AsyncWebClient, body: dict[str, Any], text: str) -> None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    user = body["user"]["id"]
    if not channel:
        return
    # In the thread when the click was on a reply; beside the message when it was on a
    # top-level one (the root's Stop button), where the person is looking.
    message = body.get("message") or {}
    thread_ts = message.get("thread_ts")
    if thread_ts == message.get("ts"):
        thread_ts = None
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
    except SlackApiError as exc:
        log.warning("ephemeral not delivered (%s)", exc.response.get("error"))
