"""Reading TEAM_CONFIG: AutoGen declarative team JSON, checked before anything is built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from store.settings import Settings

DEFAULT_TEAM_PATH = Path(__file__).parent / "teams" / "default.json"
UNSUPPORTED_TEAMS = ("MagenticOneGroupChat",)


class TeamConfigError(Exception):
    """The team JSON cannot be read or loaded; the message names the file, not secrets."""


def read_team_config(settings: Settings, path: Path | None = None) -> dict[str, Any]:
    """The team JSON at `path` (a named team's file), else TEAM_CONFIG's or the default's."""
    path = path or settings.team_config or DEFAULT_TEAM_PATH
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TeamConfigError(f"TEAM_CONFIG {path} could not be read: {exc}") from None
    if not isinstance(data, dict) or data.get("component_type") != "team":
        raise TeamConfigError(f"TEAM_CONFIG {path} is not an AutoGen team component")
    if str(data.get("provider", "")).endswith(UNSUPPORTED_TEAMS):
        raise TeamConfigError(
            f"TEAM_CONFIG {path}: MagenticOne teams are not supported (its orchestrator "
            "counts turns its own way, so the app cannot pause it after each message); "
            "use RoundRobinGroupChat, SelectorGroupChat or Swarm"
        )
    return data
