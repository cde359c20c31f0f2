from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot import ids
from bot.listeners.views.credential_submit import credential_submit_view


def register(app: AsyncApp) -> None:
    app.view(ids.CREDENTIAL_MODAL)(credential_submit_view)
