"""The Home tab opened: show the person's runs, keys and teams as they are now."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.home import publish_home
from bot.services import services_of


async def app_home_opened_event(
    event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    if event.get("tab") != "home":
        return  # the Messages tab is off
    await publish_home(
        services_of(context), client, team_id=str(body["team_id"]), user_id=str(event["user"])
    )
