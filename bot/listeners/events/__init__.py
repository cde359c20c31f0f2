from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.events.app_home_opened import app_home_opened_event
from bot.listeners.events.app_mention import app_mention_event
from bot.listeners.events.message import message_event


def register(app: AsyncApp) -> None:
    app.event("app_mention")(app_mention_event)
    app.event("app_home_opened")(app_home_opened_event)
    app.event("message")(message_event)  # every subtype: the listener drops all but replies
