"""What listeners need, handed to them through Bolt's context (no globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from runner.manager import RunManager
from store.settings import Settings

CONTEXT_KEY = "services"


@dataclass(frozen=True)
class Services:
    """Listeners talk to the runner (`runs`), never to the store. `trigger_client` never
    retries: a trigger_id is valid for 3 s and once, so a retried `views.open` after a 429's
    Retry-After would only spend a dead trigger."""

    settings: Settings
    runs: RunManager
    trigger_client: AsyncWebClient
    workspace_url: str | None = None  # auth.test's url, for links to threads


def services_of(context: AsyncBoltContext) -> Services:
    """The app's services, put in every request's context by `bot.app`."""
    return context[CONTEXT_KEY]


def team_of(body: dict[str, Any]) -> str:
    """The workspace id of an interaction payload (its shape differs by kind)."""
    team = body.get("team") or {}
    return str(team.get("id") or body.get("team_id") or body.get("user", {}).get("team_id") or "")
