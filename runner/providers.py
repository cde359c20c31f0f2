"""Who issues each kind of credential: what the private modal tells a person about it.

A credential is stored under a provider name (`openrouter`, `github`, `tavily`, ...). The
modal that asks for one shows the provider's title, a hint on what kind of key fits, and a
link to the page where such a key is made. The built-in table covers the app's own needs
and common MCP servers; PROVIDERS_FILE adds or overrides entries with a JSON object
`{"name": {"title": ..., "hint": ..., "url": ...}}`, read and checked once at start-up.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.team_config import TeamConfigError
from store.settings import Settings

PROVIDER_NAME = re.compile(r"^[a-z0-9_.-]{1,64}$")
SAFE_URL = re.compile(r"https://[^\s<>|\"]{3,500}")  # shown as a Slack link: nothing that breaks it


class ProviderFileError(TeamConfigError):
    """PROVIDERS_FILE cannot be used; the message is one line for the operator."""


@dataclass(frozen=True)
class Provider:
    name: str
    title: str
    hint: str = ""
    url: str | None = None  # where such a key is made


BUILT_IN: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        Provider(
            "openrouter",
            "OpenRouter API key",
            "The key the agents use to call the LLM (it starts with sk-or-).",
            "https://openrouter.ai/settings/keys",
        ),
        Provider(
            "openai",
            "OpenAI API key",
            "A project key from the OpenAI platform (it starts with sk-).",
            "https://platform.openai.com/api-keys",
        ),
        Provider(
            "anthropic",
            "Anthropic API key",
            "A key from the Anthropic console (it starts with sk-ant-).",
            "https://console.anthropic.com/settings/keys",
        ),
        Provider(
            "github",
            "GitHub personal access token",
            "A fine-grained token with access to the repositories the agents should use.",
            "https://github.com/settings/personal-access-tokens/new",
        ),
        Provider(
            "gitlab",
            "GitLab personal access token",
            "A token with the api or read_api scope.",
            "https://gitlab.com/-/user_settings/personal_access_tokens",
        ),
        Provider(
            "tavily",
            "Tavily API key",
            "Used by the web_search tool (it starts with tvly-).",
            "https://app.tavily.com/home",
        ),
        Provider(
            "notion",
            "Notion integration secret",
            "An internal integration secret, shared with the pages the agents may read.",
            "https://www.notion.so/profile/integrations",
        ),
        Provider(
            "linear",
            "Linear API key",
            "A personal API key from Linear's security settings.",
            "https://linear.app/settings/account/security",
        ),
    )
}


class ProviderTable:
    def __init__(self, extra: dict[str, Provider] | None = None) -> None:
        self._providers = {**BUILT_IN, **(extra or {})}

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderTable:
        path = settings.providers_file
        return cls(read_provider_file(path) if path is not None else None)

    def get(self, name: str) -> Provider:
        """The provider's entry; a provider nobody described gets a plain generic one."""
        known = self._providers.get(name)
        return known or Provider(name, f"{name} API key", "The key this run's tools need.")

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)


def read_provider_file(path: Path) -> dict[str, Provider]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProviderFileError(f"PROVIDERS_FILE {path} could not be read: {exc}") from None
    if not isinstance(data, dict):
        raise ProviderFileError(f"PROVIDERS_FILE {path} must hold a JSON object of providers")
    return {name: _provider(path, name, entry) for name, entry in data.items()}


def _provider(path: Path, name: str, entry: Any) -> Provider:
    where = f"PROVIDERS_FILE {path}, provider {name!r}"
    if not PROVIDER_NAME.fullmatch(name):
        raise ProviderFileError(f"{where}: names are lower case letters, digits, . _ or -")
    title = entry.get("title") if isinstance(entry, dict) else None
    if not isinstance(title, str) or not title.strip():
        raise ProviderFileError(f'{where}: needs at least a "title" string')
    url = entry.get("url")
    if url is not None and not (isinstance(url, str) and SAFE_URL.fullmatch(url)):
        raise ProviderFileError(f'{where}: "url" must be a plain https:// address')
    hint = entry.get("hint", "")
    if not isinstance(hint, str):
        raise ProviderFileError(f'{where}: "hint" must be a string')
    return Provider(name, str(entry["title"]).strip()[:100], hint[:300], url)
