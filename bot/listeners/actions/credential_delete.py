"""Delete one of your stored keys from the `/autogen credentials` list."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext, AsyncRespond

from bot.listeners.answers import credential_rows
from bot.services import services_of, team_of


async def credential_delete_action(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> None:
    await ack()
    keys = services_of(context).runs.keys
    team_id, user_id = team_of(body), body["user"]["id"]
    provider = str(action.get("value", ""))
    await keys.delete(workspace_id=team_id, user_id=user_id, provider=provider)
    await respond(
        replace_original=True,
        response_type="ephemeral",
        text="Your keys",
        blocks=await credential_rows(keys, team_id, user_id),
    )
