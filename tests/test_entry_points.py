"""What a new user types first: `python -m bot --help`, and imports from another folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def _python(folder: Path, *args: str, pythonpath: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PYTHONPATH"))}
    if pythonpath:
        env["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run(
        [sys.executable, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=60
    )


def test_bot_help_prints_usage_and_starts_nothing(tmp_path: Path) -> None:
    result = _python(tmp_path, "-m", "bot", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m bot")
    assert "cp .env.example .env" in result.stdout and "SLACK_APP_TOKEN" in result.stdout
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []  # no database, no key file


def test_bot_without_configuration_names_the_fix(tmp_path: Path) -> None:
    result = _python(tmp_path, "-m", "bot")
    assert result.returncode == 2
    assert "cp .env.example .env" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_dependency_installs_a_tests_package_that_shadows_ours(tmp_path: Path) -> None:
    """markdown-to-mrkdwn ships a top-level `tests` package; `make` removes it from the venv,
    so `tests` found from any folder is the project's or nothing."""
    probe = "import importlib.util as u; s = u.find_spec('tests'); print(s and s.origin)"
    result = _python(tmp_path, "-c", probe, pythonpath=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"
    result = _python(tmp_path, "-c", "import tests.fakes.slack_api as m; print(m.__file__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(PROJECT_ROOT / "tests"))
