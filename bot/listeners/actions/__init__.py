from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.actions import approval, credential_delete, credential_open, stop_run
from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    approval.register(app, services)
    credential_open.register(app, services)
    credential_delete.register(app, services)
    stop_run.register(app, services)
