"""Delete one of your stored keys from the `/autogen credentials` list."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import ids
from bot.listeners.answers import credential_rows
from bot.services import Services, team_of
from store.crypto import Owner


def register(app: AsyncApp, services: Services) -> None:
    @app.action(ids.CREDENTIAL_DELETE)
    async def credential_delete_action(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        team_id, user_id = team_of(body), body["user"]["id"]
        provider = str(action.get("value", ""))[:64]
        await services.store.credentials.delete(Owner(team_id, user_id, provider), actor_id=user_id)
        await respond(
            replace_original=True,
            response_type="ephemeral",
            text="Your keys",
            blocks=await credential_rows(services, team_id, user_id),
        )
