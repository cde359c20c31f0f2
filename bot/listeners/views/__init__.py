from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot import ids
from bot.listeners.views.credential_add_submit import credential_add_submit_view
from bot.listeners.views.credential_submit import credential_submit_view
from bot.listeners.views.tool_deny_submit import tool_deny_submit_view


def register(app: AsyncApp) -> None:
    app.view(ids.CREDENTIAL_MODAL)(credential_submit_view)
    app.view(ids.TOOL_DENY_MODAL)(tool_deny_submit_view)
    app.view(ids.CREDENTIAL_ADD_MODAL)(credential_add_submit_view)
