"""The Home tab's "Add a key": the private form to store a key before any run asks."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncBoltContext
from slack_sdk.errors import SlackClientError

from bot.services import services_of
from bot.ui.credential_modal import add_key_modal

log = logging.getLogger(__name__)


async def credential_add_action(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
) -> None:
    await ack()
    services = services_of(context)
    providers = [services.runs.providers.get(name) for name in services.runs.providers.names]
    try:  # the trigger is valid for 3 s and once: one try
        await services.trigger_client.views_open(
            trigger_id=body["trigger_id"], view=add_key_modal(providers)
        )
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("add-a-key form not opened (%s)", type(exc).__name__)
