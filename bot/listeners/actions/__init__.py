from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot import ids
from bot.listeners.actions.approval import approve_action
from bot.listeners.actions.credential_add import credential_add_action
from bot.listeners.actions.credential_delete import credential_delete_action
from bot.listeners.actions.credential_open import credential_open_action
from bot.listeners.actions.feedback import feedback_action
from bot.listeners.actions.stop_run import stop_run_action
from bot.listeners.actions.tool_deny import tool_deny_action


def register(app: AsyncApp) -> None:
    app.action(ids.APPROVE_PATTERN)(approve_action)
    app.action(ids.CREDENTIAL_OPEN)(credential_open_action)
    app.action(ids.CREDENTIAL_DELETE)(credential_delete_action)
    app.action(ids.CREDENTIAL_ADD)(credential_add_action)
    app.action(ids.STOP_RUN)(stop_run_action)
    app.action(ids.TOOL_DENY)(tool_deny_action)
    app.action(ids.RUN_FEEDBACK)(feedback_action)
