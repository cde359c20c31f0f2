"""Delete one of your stored keys: from the `/autogen credentials` list, or the Home tab."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.answers import credential_rows
from bot.listeners.home import publish_home
from bot.services import services_of, team_of


async def credential_delete_action(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services = services_of(context)
    keys = services.runs.keys
    team_id, user_id = team_of(body), body["user"]["id"]
    provider = str(action.get("value", ""))
    await keys.delete(workspace_id=team_id, user_id=user_id, provider=provider)
    if (body.get("view") or {}).get("type") == "home":  # no response_url there: republish
        await publish_home(services, client, team_id=team_id, user_id=user_id)
        return
    await respond(
        replace_original=True,
        response_type="ephemeral",
        text="Your keys",
        blocks=await credential_rows(keys, team_id, user_id),
    )
