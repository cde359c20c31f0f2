"""Register every listener, kind by kind (commands, actions, views)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners import actions, commands, views
from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    commands.register(app, services)
    actions.register(app, services)
    views.register(app, services)
