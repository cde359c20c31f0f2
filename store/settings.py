"""The one place that reads the environment (and `.env`) into a frozen, typed settings object.

It lives in `store/`, the bottom layer, because every package needs it and `store/` imports
nothing above it. Nothing else in the project reads `os.environ`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/autogen-slack.db"
DEFAULT_LLM_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_LLM_MODEL = "openai/gpt-4o-mini"
ENV_FILE = ".env"
# The values .env.example ships with: a copied file that was never filled in.
PLACEHOLDERS = frozenset({"xoxb-your-bot-token", "xapp-your-app-token"})
GENERATE_KEY = "make generate-key"

# What to tell a person about each variable when it is missing or malformed.
_HINTS: dict[str, str] = {
    "SLACK_BOT_TOKEN": "set it to the Bot User OAuth Token (xoxb-...) from your app's "
    "OAuth & Permissions page",
    "SLACK_APP_TOKEN": "set it to an app-level token (xapp-...) with connections:write, "
    "or unset it to use HTTP mode",
    "SLACK_SIGNING_SECRET": "set it to the Signing Secret from your app's Basic Information "
    "page (required in HTTP mode)",
    "SERVER_SECRET_KEY": "set it to one or more Fernet keys, comma separated, newest first; "
    f"make one with: {GENERATE_KEY}",
    "DATABASE_URL": "use an async SQLAlchemy URL such as sqlite+aiosqlite:///data/app.db "
    "or postgresql+asyncpg://user@host/db",
    "APPROVERS": "list Slack user ids separated by commas, e.g. U012ABC,U034DEF",
    "AUTO_APPLY": "list action types separated by commas: revise, continue, stop, "
    "request_credential",
    "TOOLS": "list built-in tools separated by commas: fetch_url, web_search (or leave empty)",
    "TOOL_APPROVAL": "list tool name patterns separated by commas, e.g. github.*,fetch_url",
    "TOOL_AUTO_APPROVE": "list tool name patterns separated by commas, e.g. github.get_*",
    "MCP_CONFIG": "point it at a JSON file with an mcpServers object (see the README)",
    "PROVIDERS_FILE": "point it at a JSON object of providers: "
    '{"name": {"title": "...", "hint": "...", "url": "https://..."}}',
    "TEAMS_DIR": "point it at a folder of team JSON files (name.json, as AutoGen Studio exports)",
    "LLM_MODEL_INFO": "give a JSON object such as "
    '{"vision": false, "function_calling": true, "json_output": true, "family": "unknown", '
    '"structured_output": true}',
}

BuiltinTool = Literal["fetch_url", "web_search"]
DEFAULT_WEB_SEARCH_URL = "https://api.tavily.com"
_TOOL_PATTERN = r"^[A-Za-z0-9_.*?\[\]-]{1,128}$"

ActionType = Literal["revise", "continue", "stop", "request_credential"]
ACTION_TYPES: tuple[str, ...] = ("revise", "continue", "stop", "request_credential")


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line meant for the operator."""


def _not_a_placeholder(value: SecretStr | None) -> None:
    if value is not None and value.get_secret_value() in PLACEHOLDERS:
        raise PydanticCustomError("placeholder", "is still the example value from .env.example")


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the app. Field names map to upper-case environment variables."""

    # An empty value is no value: `LLM_API_KEY=` left in .env must not hide a key set
    # under its old name, nor count as a key.
    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,
    )

    app_env: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str | None = None
    port: int = Field(default=3000, ge=1, le=65535)

    database_url: str = DEFAULT_DATABASE_URL
    server_secret_key: SecretStr | None = None

    llm_base_url: str = DEFAULT_LLM_BASE_URL
    llm_model: str = DEFAULT_LLM_MODEL
    llm_model_info: dict[str, Any] | None = None
    verifier_model: str | None = None
    verifier_enabled: bool = True
    streaming: bool = True  # STREAMING=off: agents' replies appear when finished
    playground: bool = True  # PLAYGROUND=off: no web page (the API stays)
    verifier_timeout_s: float = Field(default=60.0, gt=0)
    llm_provider: str = Field(default="openrouter", pattern=r"^[a-z0-9_.-]{1,64}$")
    # The workspace's LLM key (OPENROUTER_API_KEY still works); LLM_KEY_REQUIRED=false for
    # an endpoint that takes no key (a local model server): nobody is asked for one then.
    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("llm_api_key", "openrouter_api_key")
    )
    llm_key_required: bool = True
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    team_config: Path | None = None
    teams_dir: Path | None = None

    max_concurrent_runs: int = Field(default=4, ge=1, le=256)
    max_turns: int = Field(default=12, ge=1, le=500)
    run_timeout_s: int = Field(default=1800, ge=10)
    credential_timeout_s: int = Field(default=86400, ge=10)
    run_token_budget: int | None = Field(default=None, ge=1)
    run_lease_s: int = Field(default=8, ge=2)
    approvers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    auto_apply: Annotated[list[ActionType], NoDecode] = Field(default_factory=list)

    tools: Annotated[list[BuiltinTool], NoDecode] = Field(
        default_factory=lambda: ["fetch_url", "web_search"]
    )
    tool_approval: Annotated[list[str], NoDecode] = Field(default_factory=list)
    tool_auto_approve: Annotated[list[str], NoDecode] = Field(default_factory=list)
    tool_timeout_s: float = Field(default=60.0, gt=0)
    tool_result_max_chars: int = Field(default=20_000, ge=500, le=500_000)
    mcp_config: Path | None = None
    mcp_start_timeout_s: float = Field(default=30.0, gt=0)
    providers_file: Path | None = None
    web_search_url: str = DEFAULT_WEB_SEARCH_URL
    fetch_allow_private: bool = False
    fetch_max_bytes: int = Field(default=2_000_000, ge=1_000)
    fetch_timeout_s: float = Field(default=20.0, gt=0)

    @field_validator(
        "approvers", "auto_apply", "tools", "tool_approval", "tool_auto_approve", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("approvers")
    @classmethod
    def _slack_user_ids(cls, value: list[str]) -> list[str]:
        for user_id in value:
            if user_id[:1] not in ("U", "W") or not user_id.isalnum():
                raise ValueError(f"{user_id!r} is not a Slack user id")
        return value

    @field_validator("tool_approval", "tool_auto_approve")
    @classmethod
    def _tool_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not re.fullmatch(_TOOL_PATTERN, pattern):
                raise ValueError(f"{pattern!r} is not a tool name pattern")
        return value

    @field_validator("llm_model_info", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else None
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("needs an async driver")
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        _not_a_placeholder(value)
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must start with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        _not_a_placeholder(value)
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must start with xapp-")
        return value

    @model_validator(mode="after")
    def _production_needs_key(self) -> Settings:
        if self.app_env == "production" and self.server_secret_key is None:
            raise PydanticCustomError(
                "missing_in_production", "is missing (APP_ENV=production requires it)"
            )
        return self

    @property
    def verifier_model_name(self) -> str:
        return self.verifier_model or self.llm_model

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def secret_keys(self) -> list[str]:
        """Fernet keys, newest first; empty when none is configured."""
        if self.server_secret_key is None:
            return []
        raw = self.server_secret_key.get_secret_value()
        return [key.strip() for key in raw.split(",") if key.strip()]

    @property
    def local_mode(self) -> bool:
        """No Slack setting at all: the app serves the web playground and API alone, on this
        machine only (127.0.0.1), so a newcomer sees it work before making a Slack app."""
        return (
            self.slack_bot_token is None
            and self.slack_app_token is None
            and self.slack_signing_secret is None
        )

    def require_slack(self) -> None:
        """Check what the Slack side needs (nothing in local mode); the runner and store
        work without it."""
        if self.local_mode:
            return
        if self.slack_bot_token is None:  # some Slack settings, but not the main one
            raise ConfigError(_line("SLACK_BOT_TOKEN", "is missing"))
        if not self.socket_mode and self.slack_signing_secret is None:
            raise ConfigError(_line("SLACK_SIGNING_SECRET", "is missing (HTTP mode)"))


def environment_value(name: str) -> str | None:
    """One environment variable, for `${env:NAME}` in MCP_CONFIG: the operator's file names
    what it reads, so this is the one read outside the settings object."""
    return os.environ.get(name)


def _line(variable: str, problem: str) -> str:
    hint = _HINTS.get(variable, "see .env.example")
    return f"{variable} {problem}: {hint}."


def load_settings(**overrides: Any) -> Settings:
    """Read settings once; turn pydantic's report into one line that names the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = [str(part) for part in first.get("loc", ()) if not isinstance(part, int)]
        message = str(first.get("msg", "is invalid")).removeprefix("Value error, ")
        kind = first.get("type")
        if kind == "missing_in_production":
            raise ConfigError(_line("SERVER_SECRET_KEY", message)) from None
        variable = location[0].upper() if location else "a setting"
        if kind == "placeholder":
            raise ConfigError(_line(variable, message)) from None
        raise ConfigError(_line(variable, f"is invalid ({message})")) from None
