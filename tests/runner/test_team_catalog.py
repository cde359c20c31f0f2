"""TEAMS_DIR: every file is a team, named by its file, checked at start-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.team import check_team_config
from runner.team_catalog import TeamCatalog
from runner.team_config import DEFAULT_TEAM_PATH, TeamConfigError
from store.settings import load_settings


def _team(folder: Path, name: str, description: str = "Finds sources.") -> Path:
    data = json.loads(DEFAULT_TEAM_PATH.read_text(encoding="utf-8"))
    data["description"] = description
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


async def test_teams_are_named_by_their_files_and_checked_at_start_up(tmp_path: Path) -> None:
    _team(tmp_path, "research", "Finds sources\nand cites them.")
    _team(tmp_path, "ops")
    settings = load_settings(teams_dir=str(tmp_path))
    catalog = TeamCatalog.from_settings(settings)
    assert [t.name for t in catalog.all] == ["default", "ops", "research"]
    assert (
        catalog.get("Research") is not None and catalog.get("research").path.name == "research.json"
    )
    assert catalog.get("research").description == "Finds sources and cites them."
    assert catalog.get("default") is catalog.default and catalog.default.path is None
    assert catalog.get("nope") is None
    await check_team_config(settings)  # loads every one of them


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("default", None, '"default" is the name of TEAM_CONFIG'),
        ("Bad Name", None, "lower case letters"),
        ("broken", "{not json", "could not be read"),
        ("agent", '{"component_type": "agent"}', "not an AutoGen team component"),
    ],
)
def test_a_bad_team_file_is_one_line(
    tmp_path: Path, name: str, content: str | None, problem: str
) -> None:
    if content is None:
        _team(tmp_path, name)
    else:
        (tmp_path / f"{name}.json").write_text(content)
    with pytest.raises(TeamConfigError) as raised:
        TeamCatalog.from_settings(load_settings(teams_dir=str(tmp_path)))
    assert problem in str(raised.value) and "\n" not in str(raised.value)


def test_teams_dir_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(TeamConfigError, match="is not a folder"):
        TeamCatalog.from_settings(load_settings(teams_dir=str(tmp_path / "missing")))
