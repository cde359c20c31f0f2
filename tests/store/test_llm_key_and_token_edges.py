"""The workspace LLM key's two names at their edges (an empty one hides nothing; the
environment beats .env), and a token given to revoke-token in place of its id: revoked,
and never printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from store.settings import load_settings
from store.tokens import TOKEN_SHAPE
from tests.store.test_cli import _cli


def test_revoke_token_never_prints_a_token_value_given_to_it(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/tokens.db",
        "SERVER_SECRET_KEY": Fernet.generate_key().decode(),
    }
    made = _cli(tmp_path, "create-token", "--user", "U1", **env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert TOKEN_SHAPE.fullmatch(token)

    # The operator pastes the token (the thing they know leaked) instead of its id.
    result = _cli(tmp_path, "revoke-token", token, **env)
    assert token not in result.stderr + result.stdout
    assert token[4:] not in result.stderr + result.stdout
    assert result.returncode == 0  # revoked as found
    assert "revoked" in _cli(tmp_path, "list-tokens", **env).stdout
    again = _cli(tmp_path, "revoke-token", token, **env)
    assert again.returncode == 1 and token not in again.stderr + again.stdout


def test_an_empty_new_name_does_not_hide_the_old_one_in_the_env_file() -> None:
    # The cwd is the test's tmp_path (conftest), so this is the .env load_settings reads.
    Path(".env").write_text("LLM_API_KEY=\nOPENROUTER_API_KEY=sk-real-workspace-key\n")
    key = load_settings().llm_api_key
    assert key is not None and key.get_secret_value() == "sk-real-workspace-key"


def test_an_empty_new_name_in_the_environment_does_not_hide_the_old_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path(".env").write_text("OPENROUTER_API_KEY=sk-real-workspace-key\n")
    monkeypatch.setenv("LLM_API_KEY", "")
    key = load_settings().llm_api_key
    assert key is not None and key.get_secret_value() == "sk-real-workspace-key"


def test_the_environment_wins_over_the_env_file_whichever_name_as_documented(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As for every setting (and as the README says): what the environment holds beats
    `.env`, so an old name still exported in the shell wins over the new one in `.env`."""
    Path(".env").write_text("LLM_API_KEY=sk-new-local-endpoint-key\n")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-old-shell-export")
    key = load_settings().llm_api_key
    assert key is not None and key.get_secret_value() == "sk-or-old-shell-export"
