"""Settings: each missing or malformed value gives one clear line that names it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from store.keys import dev_key_file, resolve_secret_keys
from store.settings import ConfigError, Settings, load_settings


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings().require_slack()
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SLACK_SIGNING_SECRET": "s"}, "SLACK_BOT_TOKEN is missing"),
        ({"SLACK_APP_TOKEN": "xapp-1"}, "SLACK_BOT_TOKEN is missing"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET is missing"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN is invalid"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "nope"}, "SLACK_APP_TOKEN is invalid"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "PORT": "http"},
            "PORT is invalid",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "MAX_TURNS": "0"},
            "MAX_TURNS is invalid",
        ),
        ({"DATABASE_URL": "sqlite:///sync.db"}, "DATABASE_URL is invalid"),
        ({"APPROVERS": "alice,bob"}, "APPROVERS is invalid"),
        ({"AUTO_APPLY": "revise,explode"}, "AUTO_APPLY is invalid"),
        ({"LLM_MODEL_INFO": "{not json"}, "LLM_MODEL_INFO is invalid"),
        ({"APP_ENV": "production"}, "SERVER_SECRET_KEY is missing"),
        ({"SLACK_BOT_TOKEN": "xoxb-your-bot-token"}, "SLACK_BOT_TOKEN is still the example"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-your-app-token"},
            "SLACK_APP_TOKEN is still the example",
        ),
    ],
)
def test_one_clear_line_per_problem(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    message = _error(monkeypatch, **env)
    assert message.startswith(named), message
    assert ": " in message  # says what to do


def test_no_slack_setting_at_all_is_local_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first `make run` in a fresh clone (no .env): local mode, nothing missing."""
    settings = load_settings()
    assert settings.local_mode
    settings.require_slack()
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    assert not load_settings().local_mode


def test_the_copied_example_file_is_recognised(tmp_path: Path) -> None:
    """`cp .env.example .env` and start: the placeholder token is never sent to Slack."""
    from tests.conftest import PROJECT_ROOT

    (tmp_path / ".env").write_text((PROJECT_ROOT / ".env.example").read_text())
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith("SLACK_BOT_TOKEN is still the example value")
    assert "your-bot-token" not in str(caught.value)


def test_secret_values_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, SLACK_BOT_TOKEN="xoxp-SECRET-VALUE-123")
    assert "SECRET-VALUE" not in message


def test_defaults_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPROVERS", "U01, W02")
    monkeypatch.setenv("AUTO_APPLY", "continue")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-test-token")
    settings = load_settings()
    assert settings.approvers == ["U01", "W02"]
    assert settings.auto_apply == ["continue"]
    assert settings.socket_mode
    assert settings.verifier_model_name == settings.llm_model
    assert settings.database_url == "sqlite+aiosqlite:///data/autogen-slack.db"
    with pytest.raises(ValidationError):  # frozen
        settings.max_turns = 3  # type: ignore[misc]


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MAX_TURNS=7\nLLM_MODEL=my/model\n")
    settings = load_settings()
    assert settings.max_turns == 7 and settings.llm_model == "my/model"


def test_development_generates_a_private_key_file(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/db/app.db")
    keys = resolve_secret_keys(settings)
    path = dev_key_file(settings)
    assert path == tmp_path / "db" / "server-secret.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert resolve_secret_keys(settings) == keys  # reused, not regenerated


def test_env_example_documents_every_setting() -> None:
    from tests.conftest import PROJECT_ROOT

    example = (PROJECT_ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"{name.upper()}=" in example, f"{name.upper()} is not in .env.example"


@pytest.mark.parametrize("name", ["LLM_API_KEY", "OPENROUTER_API_KEY"])
def test_the_workspace_llm_key_is_read_under_either_name(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.delenv("LLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv(name, "sk-workspace-key-123")
    settings = load_settings()
    assert settings.llm_api_key is not None
    assert settings.llm_api_key.get_secret_value() == "sk-workspace-key-123"
    assert "sk-workspace-key-123" not in repr(settings)


def test_llm_api_key_wins_over_the_old_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_API_KEY", "sk-new-name-key-1")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-old-name-key-2")
    key = load_settings().llm_api_key
    assert key is not None and key.get_secret_value() == "sk-new-name-key-1"


def test_a_keyless_endpoint_is_declared_with_llm_key_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().llm_key_required is True
    monkeypatch.setenv("LLM_KEY_REQUIRED", "false")
    assert load_settings().llm_key_required is False
