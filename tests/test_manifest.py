"""manifest.yml is a valid Slack app manifest and asks for no more than the app needs.

Validated against Slack's published schema (tests/manifest_schema, from slackapi/manifest-schema)
with the JSON Schema draft that schema declares. The schema takes any string as a scope, so the
exact scope set is checked here as well.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from bot.ids import EVENTS

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "manifest.yml"
SCHEMA_DIR = Path(__file__).resolve().parent / "manifest_schema"

# commands: /autogen. chat:write: chat.postMessage, chat.update, chat.postEphemeral.
# chat:write.customize: each agent posts under its own name and icon.
# views.open and response_url need no scope. No chat:write.public: users invite the bot.
# app_mentions:read: the app_mention event (`@AutoGen <task>`).
MINIMAL_BOT_SCOPES = {
    "commands",
    "chat:write",
    "chat:write.customize",
    "app_mentions:read",
    "channels:history",  # replies in a run's thread: message.channels
    "groups:history",  # and in private channels: message.groups
}

Manifest = dict[str, Any]


def load_manifest() -> Manifest:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(manifest, dict), "manifest.yml must be a YAML mapping"
    return manifest


def schema_path(manifest: Manifest) -> Path:
    """The versioned schema matching the manifest's `_metadata.major_version` (default 1)."""
    major = manifest.get("_metadata", {}).get("major_version", 1)
    return SCHEMA_DIR / f"manifest.schema.{major}.0.0.json"


def make_validator(manifest: Manifest) -> Validator:
    schema = json.loads(schema_path(manifest).read_text(encoding="utf-8"))
    cls = validator_for(schema, default=None)
    # The schema says draft-07; refuse a silent fallback to another draft.
    assert cls is jsonschema.Draft7Validator, f"unexpected $schema {schema.get('$schema')!r}"
    cls.check_schema(schema)
    # Local "#/definitions/..." refs resolve against the root schema itself.
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_errors(manifest: Manifest) -> list[jsonschema.ValidationError]:
    return sorted(make_validator(manifest).iter_errors(manifest), key=lambda e: list(e.path))


def check_scopes(manifest: Manifest) -> None:
    scopes = manifest.get("oauth_config", {}).get("scopes", {})
    bot = scopes.get("bot", [])
    assert len(bot) == len(set(bot)), f"duplicate bot scopes: {bot}"
    assert set(bot) == MINIMAL_BOT_SCOPES, f"bot scopes {sorted(bot)} != minimal set"
    for key in ("user", "user_optional", "bot_optional"):
        assert not scopes.get(key), f"unexpected {key} scopes: {scopes.get(key)}"


@pytest.fixture
def manifest() -> Manifest:
    return load_manifest()


def test_schema_copy_is_complete() -> None:
    assert (SCHEMA_DIR / "LICENSE").is_file()
    assert (SCHEMA_DIR / "README.md").is_file()
    schema = json.loads((SCHEMA_DIR / "manifest.schema.1.0.0.json").read_text(encoding="utf-8"))
    definitions = schema["definitions"]
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(schema)
    assert refs, "the schema should use $ref"
    missing = [r for r in refs if r.removeprefix("#/definitions/") not in definitions]
    assert not missing, f"unresolvable $refs: {missing}"


def test_manifest_matches_slack_schema(manifest: Manifest) -> None:
    assert manifest["_metadata"]["major_version"] == 1
    assert schema_path(manifest).is_file()
    errors = schema_errors(manifest)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_app_identity(manifest: Manifest) -> None:
    assert manifest["display_information"]["name"] == "AutoGen"
    bot_user = manifest["features"]["bot_user"]
    assert bot_user["display_name"] == "AutoGen"
    assert bot_user["always_online"] is True


def test_slash_command_is_autogen(manifest: Manifest) -> None:
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == ["/autogen"]
    command = commands[0]
    assert command["should_escape"] is False
    for word in ("help", "status", "stop", "credentials"):
        assert word in command["usage_hint"]
    # Socket Mode: Slack delivers over the socket, a URL would be ignored or misleading.
    assert "url" not in command


def test_socket_mode_and_interactivity(manifest: Manifest) -> None:
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert "request_url" not in settings["interactivity"]
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    # Only the events a listener answers (bot.ids.EVENTS), over the socket: no request_url.
    # A message subscription is named by where the message is (message.channels: "message").
    events = settings["event_subscriptions"]
    assert {name.split(".")[0] for name in events["bot_events"]} == set(EVENTS)
    assert "request_url" not in events
    assert {"message.channels", "message.groups"} <= set(events["bot_events"])


def test_the_home_tab_is_on_and_the_messages_tab_off(manifest: Manifest) -> None:
    app_home = manifest["features"]["app_home"]
    assert app_home["home_tab_enabled"] is True
    assert app_home["messages_tab_enabled"] is False


def test_scopes_are_minimal(manifest: Manifest) -> None:
    check_scopes(manifest)


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Manifest], None]:
    def mutate(manifest: Manifest) -> None:
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _delete(path: tuple[Any, ...]) -> Callable[[Manifest], None]:
    def mutate(manifest: Manifest) -> None:
        node = manifest
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


# (mutation, path of the expected error, JSON Schema keyword that must fire)
BAD_MANIFESTS = {
    "scopes as a string": (
        _set(("oauth_config", "scopes", "bot"), "commands,chat:write"),
        ["oauth_config", "scopes", "bot"],
        "type",
    ),
    "scope name too long": (
        _set(("oauth_config", "scopes", "bot"), ["commands", "chat:" + "w" * 60]),
        ["oauth_config", "scopes", "bot", 1],
        "maxLength",
    ),
    "socket mode as a string": (
        _set(("settings", "socket_mode_enabled"), "true"),
        ["settings", "socket_mode_enabled"],
        "type",
    ),
    "command without slash": (
        _set(("features", "slash_commands", 0, "command"), "autogen"),
        ["features", "slash_commands", 0, "command"],
        "pattern",
    ),
    "misspelt settings key": (
        _set(("settings", "socket_mode"), True),
        ["settings"],
        "additionalProperties",
    ),
    "interactivity without is_enabled": (
        _delete(("settings", "interactivity", "is_enabled")),
        ["settings", "interactivity"],
        "required",
    ),
    "display name too long": (
        _set(("display_information", "name"), "A" * 36),
        ["display_information", "name"],
        "maxLength",
    ),
    "unknown _metadata field": (
        _set(("_metadata", "version"), 1),
        ["_metadata"],
        "additionalProperties",
    ),
}


@pytest.mark.parametrize("case", BAD_MANIFESTS, ids=list(BAD_MANIFESTS))
def test_schema_rejects_bad_manifest(manifest: Manifest, case: str) -> None:
    mutate, path, keyword = BAD_MANIFESTS[case]
    bad = copy.deepcopy(manifest)
    mutate(bad)
    errors = schema_errors(bad)
    assert errors, f"schema accepted a manifest with {case}"
    found = [(list(e.absolute_path), e.validator) for e in errors]
    assert (path, keyword) in found, f"expected {keyword} at {path}, got {found}"
    # The unmodified manifest is still valid, so the error comes from the mutation alone.
    assert not schema_errors(manifest)


def test_unknown_scope_is_caught_by_scope_check(manifest: Manifest) -> None:
    """The schema accepts any short string as a scope; the exact-set check catches typos."""
    bad = copy.deepcopy(manifest)
    bad["oauth_config"]["scopes"]["bot"] = ["commands", "chat:writ"]
    assert not schema_errors(bad)
    with pytest.raises(AssertionError, match="minimal set"):
        check_scopes(bad)


@pytest.mark.parametrize(
    "scopes",
    [
        {"bot": ["commands", "chat:write", "chat:write.public"]},
        {"bot": ["commands", "chat:write"], "user": ["chat:write"]},
        {"bot": ["commands", "chat:write", "chat:write"]},
    ],
    ids=["extra bot scope", "user scope", "duplicate"],
)
def test_scope_check_rejects_more_than_minimal(manifest: Manifest, scopes: dict) -> None:
    bad = copy.deepcopy(manifest)
    bad["oauth_config"]["scopes"] = scopes
    with pytest.raises(AssertionError):
        check_scopes(bad)
