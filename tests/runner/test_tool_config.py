"""MCP_CONFIG and PROVIDERS_FILE are checked at start-up: each mistake is one line that
names the file, the entry and what to change (and never a value)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.mcp_servers import McpConfigError, read_mcp_config
from runner.providers import ProviderFileError, ProviderTable
from runner.workbench import ToolPolicy
from store.settings import ConfigError, load_settings


def _mcp(tmp_path: Path, data: Any) -> list:
    path = tmp_path / "mcp.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return read_mcp_config(load_settings(mcp_config=str(path)))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("{not json", "could not be read"),
        ({"servers": {}}, 'needs an "mcpServers" object'),
        ({"mcpServers": {"bad name!": {"command": "x"}}}, "names are letters"),
        ({"mcpServers": {"a": {}}}, 'either "command" (stdio) or "url" (HTTP)'),
        ({"mcpServers": {"a": {"command": "x", "url": "http://y"}}}, "either"),
        ({"mcpServers": {"a": {"command": "x", "args": "-v"}}}, "'args' must be a list"),
        ({"mcpServers": {"a": {"command": "x", "env": {"K": 1}}}}, "strings only"),
        ({"mcpServers": {"a": {"url": "ftp://x"}}}, "http:// or https://"),
        (
            {"mcpServers": {"a": {"command": "x", "env": {"K": "${env:NOT_SET_ANYWHERE}"}}}},
            "NOT_SET_ANYWHERE is not set",
        ),
        (
            {"mcpServers": {"a": {"command": "x", "args": ["--token", "${credential:gh}"]}}},
            "goes in env or headers, not args",
        ),
        ({"mcpServers": {"a": {"url": "https://x/${credential:gh}"}}}, "not url"),
        (
            {"mcpServers": {"a": {"command": "x", "timeout_s": "soon"}}},
            "timeout_s must be a positive number",
        ),
    ],
)
def test_a_broken_mcp_config_is_one_line(tmp_path: Path, data: Any, problem: str) -> None:
    with pytest.raises(McpConfigError) as raised:
        _mcp(tmp_path, data)
    message = str(raised.value)
    assert problem in message and "\n" not in message and "MCP_CONFIG" in message


def test_a_good_mcp_config_keeps_placeholders_unfilled(tmp_path: Path) -> None:
    servers = _mcp(
        tmp_path,
        {
            "mcpServers": {
                "github": {"command": "npx", "env": {"T": "${credential:GitHub}"}},
                "docs": {"url": "https://d/mcp", "headers": {"A": "Bearer ${credential:docs}"}},
            }
        },
    )
    assert [(s.name, s.needs, s.is_stdio) for s in servers] == [
        ("github", ["github"], True),
        ("docs", ["docs"], False),
    ]
    assert servers[0].config["env"]["T"] == "${credential:GitHub}"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"hint": "x"}, 'needs at least a "title"'),
        ({"title": "  "}, 'needs at least a "title"'),
        ({"title": "T", "url": "http://insecure"}, "plain https://"),
        ({"title": "T", "url": "https://x|<!channel>"}, "plain https://"),
        ({"title": "T", "hint": 3}, '"hint" must be a string'),
    ],
)
def test_a_broken_provider_file_is_one_line(tmp_path: Path, entry: Any, problem: str) -> None:
    path = tmp_path / "providers.json"
    path.write_text(json.dumps({"acme": entry}))
    with pytest.raises(ProviderFileError) as raised:
        ProviderTable.from_settings(load_settings(providers_file=str(path)))
    assert problem in str(raised.value) and "\n" not in str(raised.value)


def test_providers_file_adds_and_overrides_and_unknown_ones_get_a_generic_entry(
    tmp_path: Path,
) -> None:
    path = tmp_path / "providers.json"
    entries = {"acme": {"title": "Acme key", "url": "https://acme.example/keys"}}
    entries["github"] = {"title": "GitHub token (SSO)", "hint": "Ask IT."}
    path.write_text(json.dumps(entries))
    table = ProviderTable.from_settings(load_settings(providers_file=str(path)))
    assert table.get("acme").url == "https://acme.example/keys"
    assert table.get("github").title == "GitHub token (SSO)"
    assert table.get("tavily").url == "https://app.tavily.com/home"
    assert table.get("nobody-knows").title == "nobody-knows API key"


def test_tool_patterns_hold_and_free_calls() -> None:
    settings = load_settings(tool_approval="github.*,fetch_url", tool_auto_approve="github.get_*")
    policy = ToolPolicy(settings)
    assert policy.needs_approval("github.create_issue")
    assert policy.needs_approval("GitHub.Delete_Repo")
    assert not policy.needs_approval("github.get_issue")
    assert policy.needs_approval("fetch_url") and not policy.needs_approval("web_search")
    with pytest.raises(ConfigError, match="TOOL_APPROVAL"):
        load_settings(tool_approval="rm -rf")
    with pytest.raises(ConfigError, match="TOOLS"):
        load_settings(tools="fetch_url,shell")
