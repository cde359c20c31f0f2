"""Publishing a person's App Home: what the Home tab, and every change made from it, shows."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.answers import key_facts
from bot.services import Services
from bot.ui.home import HomeRun, home_view

log = logging.getLogger(__name__)


def thread_link(workspace_url: str | None, channel_id: str, ts: str | None) -> str | None:
    """Slack's permalink form for a message: the workspace, the channel, the ts without its dot."""
    if not workspace_url or not ts:
        return None
    return f"{workspace_url.rstrip('/')}/archives/{channel_id}/p{ts.replace('.', '')}"


async def publish_home(
    services: Services, client: AsyncWebClient, *, team_id: str, user_id: str
) -> None:
    runs = services.runs
    recent = await runs.runs_for(workspace_id=team_id, user_id=user_id, limit=10)
    stored = await runs.keys.listed(workspace_id=team_id, user_id=user_id)
    view = home_view(
        runs=[
            HomeRun(
                run.id,
                str(run.status),
                run.task,
                run.channel_id,
                thread_link(services.workspace_url, run.channel_id, run.root_message_ts),
            )
            for run in recent
        ],
        keys=[(info.provider, key_facts(info)) for info in stored],
        teams=runs.teams.listing,
    )
    try:
        await client.views_publish(user_id=user_id, view=view)
    except SlackApiError as exc:
        log.warning("home tab not published (%s)", exc.response.get("error"))
