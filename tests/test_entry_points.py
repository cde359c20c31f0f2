"""What a new user types first: `python -m bot --help`, and imports from another folder."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
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


def test_bot_without_configuration_starts_locally_and_prints_the_sign_in_link(
    tmp_path: Path,
) -> None:
    """A fresh clone's `make run`: no Slack setting, so local mode, on 127.0.0.1 only,
    with one printed line holding the link; SIGTERM ends it cleanly."""
    from tests.e2e.stack import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PYTHONPATH"))}
    env.update(PYTHONPATH=str(PROJECT_ROOT), PORT=str(port), LOG_FORMAT="console")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the app is listening
        assert re.fullmatch(
            rf"autogen-slack is running locally: open http://127\.0\.0\.1:{port}/login"
            r"\?code=[A-Za-z0-9_-]{32} \(this link signs your browser in once\)\n",
            line,
        ), line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            assert answer.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err


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
