"""What listeners need, handed to them at registration (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from runner.manager import RunManager
from store import Store
from store.settings import Settings


@dataclass(frozen=True)
class Services:
    """`trigger_client` never retries: a trigger_id is valid for 3 s and once, so a retried
    `views.open` after a 429's Retry-After would only spend a dead trigger. `create_app`
    fills it in when the caller did not."""

    settings: Settings
    store: Store
    runs: RunManager
    trigger_client: AsyncWebClient | None = None


def team_of(body: dict) -> str:
    """The workspace id of an interaction payload (its shape differs by kind)."""
    team = body.get("team") or {}
    return str(team.get("id") or body.get("team_id") or body.get("user", {}).get("team_id") or "")
