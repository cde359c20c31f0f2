"""Who an agent's messages are posted as: its metadata in the team JSON, else a stable
default from its name."""

from __future__ import annotations

import json
from pathlib import Path

from runner.identities import DEFAULT_ICONS, identity_for
from runner.team import load_team
from runner.team_config import DEFAULT_TEAM_PATH
from store.settings import load_settings


def test_metadata_names_the_agent_and_picks_its_icon() -> None:
    assert identity_for("code_reviewer", {}) == {
        "name": "Code reviewer",
        "icon_emoji": identity_for("code_reviewer", None)["icon_emoji"],
    }
    assert identity_for("w", {"slack_name": "Rita", "slack_icon_emoji": ":mag:"}) == {
        "name": "Rita",
        "icon_emoji": ":mag:",
    }
    assert identity_for("w", {"slack_icon_url": "https://cdn.example/w.png"})["icon_url"] == (
        "https://cdn.example/w.png"
    )
    # What Slack would refuse or misuse falls back to the default: no http icons, no
    # emoji without colons, no 200-character names.
    assert "icon_url" not in identity_for("w", {"slack_icon_url": "http://cdn.example/w.png"})
    assert identity_for("w", {"slack_icon_emoji": "mag"})["icon_emoji"] in DEFAULT_ICONS
    assert len(identity_for("w", {"slack_name": "n" * 200})["name"]) == 80


def test_the_default_is_the_same_everywhere() -> None:
    assert identity_for("planner", {}) == identity_for("planner", {})
    icons = {identity_for(f"agent{i}", {})["icon_emoji"] for i in range(40)}
    assert len(icons) > 5  # spread over the set, not one icon for all


def test_a_team_file_s_metadata_reaches_the_loaded_team(tmp_path: Path) -> None:
    team = json.loads(DEFAULT_TEAM_PATH.read_text(encoding="utf-8"))
    team["config"]["participants"][1]["config"]["metadata"] = {
        "slack_name": "The Worker",
        "slack_icon_emoji": ":hammer:",
    }
    path = tmp_path / "team.json"
    path.write_text(json.dumps(team))
    loaded = load_team(load_settings(team_config=str(path)), api_key="sk-unused-0000")
    assert loaded.identities["worker"] == {"name": "The Worker", "icon_emoji": ":hammer:"}
    assert loaded.identities["planner"]["name"] == "Planner"
