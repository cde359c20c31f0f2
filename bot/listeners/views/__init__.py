from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.views import credential_submit
from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    credential_submit.register(app, services)
