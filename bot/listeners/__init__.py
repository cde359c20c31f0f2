"""Register every listener, kind by kind (commands, actions, views, events), as Slack's
starter templates do; each handler is a module-level function that finds the app's
services in Bolt's context."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners import actions, commands, events, views


def register(app: AsyncApp) -> None:
    commands.register(app)
    actions.register(app)
    views.register(app)
    events.register(app)
