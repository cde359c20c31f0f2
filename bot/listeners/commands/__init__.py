from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.commands import autogen
from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    autogen.register(app, services)
