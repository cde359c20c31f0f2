"""The teams a person can pick: TEAM_CONFIG (the default) and the files of TEAMS_DIR.

`TEAMS_DIR` holds team JSON files as AutoGen Studio exports them, one per team; a file's
name (without `.json`) is the team's name in `/autogen --team NAME <task>`. The folder is
read and every file checked once at start-up, so a broken file stops the app with one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from runner.team_config import TeamConfigError, read_team_config
from store.settings import Settings

DEFAULT_TEAM = "default"
TEAM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
DESCRIPTION_CHARS = 200


@dataclass(frozen=True)
class TeamEntry:
    name: str
    path: Path | None  # None: the default team (TEAM_CONFIG or the built-in one)
    description: str


class TeamCatalog:
    def __init__(self, default: TeamEntry, named: list[TeamEntry]) -> None:
        self.default = default
        self.named = named
        self._by_name = {entry.name: entry for entry in named}

    @classmethod
    def from_settings(cls, settings: Settings) -> TeamCatalog:
        default = TeamEntry(DEFAULT_TEAM, None, _description(read_team_config(settings)))
        folder = settings.teams_dir
        if folder is None:
            return cls(default, [])
        if not Path(folder).is_dir():
            raise TeamConfigError(f"TEAMS_DIR {folder} is not a folder")
        named = [_entry(settings, path) for path in sorted(Path(folder).glob("*.json"))]
        return cls(default, named)

    def get(self, name: str) -> TeamEntry | None:
        """The named team, or the default one for "default"; None when there is no such team."""
        name = name.strip().lower()
        return self.default if name == DEFAULT_TEAM else self._by_name.get(name)

    @property
    def all(self) -> list[TeamEntry]:
        return [self.default, *self.named]

    @property
    def listing(self) -> list[tuple[str, str]]:
        """(name, description) of every team, the default first: what people are shown."""
        return [(entry.name, entry.description) for entry in self.all]

    def run_name(self, name: str | None) -> str | None:
        """What a run started with the team `name` records: the named team's name; None for
        the default team (or no name), which every run without one uses."""
        entry = self.get(name) if name else None
        return entry.name if entry is not None and entry.path is not None else None


def _entry(settings: Settings, path: Path) -> TeamEntry:
    name = path.stem.lower()
    if name == DEFAULT_TEAM:
        raise TeamConfigError(
            f'TEAMS_DIR {path}: "default" is the name of TEAM_CONFIG\'s team; rename the file'
        )
    if not TEAM_NAME.fullmatch(name):
        raise TeamConfigError(
            f"TEAMS_DIR {path}: a team's file name is its name: lower case letters, digits, "
            "- or _, at most 32"
        )
    return TeamEntry(name, path, _description(read_team_config(settings, path)))


def _description(data: dict[str, object]) -> str:
    """What `/autogen teams` says about a team: its own description, first line."""
    config = data.get("config")
    inner = config.get("description") if isinstance(config, dict) else None
    for text in (data.get("description"), inner, data.get("label")):
        if isinstance(text, str) and text.strip():
            return " ".join(text.split())[:DESCRIPTION_CHARS]
    return ""


__all__ = ["DEFAULT_TEAM", "TeamCatalog", "TeamEntry"]
