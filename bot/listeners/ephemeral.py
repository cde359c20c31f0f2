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
    message_ts = (body.get("container") or {}).get("message_ts")
    thread_ts = (body.get("message") or {}).get("thread_ts") or message_ts
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
    except SlackApiError as exc:
        log.warning("ephemeral not delivered (%s)", exc.response.get("error"))
