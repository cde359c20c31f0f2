"""What listeners need, handed to them at registration (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from runner.manager import RunManager
from store import Store
from store.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    runs: RunManager


def team_of(body: dict) -> str:
    """The workspace id of an interaction payload (its shape differs by kind)."""
    team = body.get("team") or {}
    return str(team.get("id") or body.get("team_id") or body.get("user", {}).get("team_id") or "")
