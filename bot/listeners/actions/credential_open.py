"""The "Add your key" button: only the user the request is for may open the modal."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncBoltContext
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.ephemeral import tell
from bot.services import services_of
from bot.ui.credential_modal import credential_modal
from store.records import RequestStatus

log = logging.getLogger(__name__)
CLICK_AGAIN = "Slack didn't open the key form ({error}). Click the button again to add your key."


async def credential_open_action(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services = services_of(context)
    request = await services.runs.keys.request(str(action.get("value", "")))
    user_id = body["user"]["id"]
    if request is None:
        await tell(client, body, "I can't find that key request any more.")
    elif request.user_id != user_id:
        await tell(client, body, f"Only <@{request.user_id}> can add this key: it is theirs.")
    elif request.status != RequestStatus.PENDING:
        await tell(client, body, f"This key request is closed ({request.status}).")
    else:
        # The trigger is valid for 3 s and once: one try, never a retry after Retry-After.
        view = credential_modal(
            request_id=request.id,
            provider=services.runs.providers.get(request.provider),
            reason=request.reason,
        )
        try:
            await services.trigger_client.views_open(trigger_id=body["trigger_id"], view=view)
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            error = _reason(exc)
            log.warning("key form for request %s not opened (%s)", request.id, error)
            await tell(client, body, CLICK_AGAIN.format(error=error))


def _reason(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return type(exc).__name__
