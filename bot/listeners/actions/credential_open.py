"""The "Add your key" button: only the user the request is for may open the modal."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import ids
from bot.listeners.ephemeral import tell
from bot.services import Services
from bot.ui import modals
from store.records import RequestStatus


def register(app: AsyncApp, services: Services) -> None:
    @app.action(ids.CREDENTIAL_OPEN)
    async def credential_open_action(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        request = await services.store.credentials.get_request(str(action.get("value", "")))
        user_id = body["user"]["id"]
        if request is None:
            await tell(client, body, "I can't find that key request any more.")
        elif request.user_id != user_id:
            await tell(client, body, f"Only <@{request.user_id}> can add this key: it is theirs.")
        elif request.status != RequestStatus.PENDING:
            await tell(client, body, f"This key request is closed ({request.status}).")
        else:
            await client.views_open(
                trigger_id=body["trigger_id"],
                view=modals.credential_modal(
                    request_id=request.id, provider=request.provider, reason=request.reason
                ),
            )
