"""`${credential:NAME}` and `${env:NAME}` in tool configuration, filled at the last moment.

Operators write placeholders where a tool sends a secret (an MCP server's environment or
headers, an HTTP tool's headers). The file keeps only the names; the values are put in a
private copy of the config for one call or one server process, never written back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\$\{(credential|env):([A-Za-z0-9_.-]{1,64})\}")


class PlaceholderError(Exception):
    """A placeholder names something that is not there (an unset environment variable)."""


def credentials_named(node: Any) -> list[str]:
    """Every provider a config tree asks for with `${credential:NAME}`, once each, in order."""
    found: dict[str, None] = {}
    for text in _strings(node):
        for kind, name in PLACEHOLDER.findall(text):
            if kind == "credential":
                found[name.lower()] = None
    return list(found)


def env_named(node: Any) -> list[str]:
    return list(
        dict.fromkeys(
            name
            for text in _strings(node)
            for kind, name in PLACEHOLDER.findall(text)
            if kind == "env"
        )
    )


def fill(
    node: Any, *, credentials: Mapping[str, str], environment: Callable[[str], str | None]
) -> Any:
    """A copy of `node` with every placeholder replaced. A missing credential or variable
    raises `PlaceholderError` naming it (never a value)."""
    if isinstance(node, str):
        return PLACEHOLDER.sub(lambda m: _value(m, credentials, environment), node)
    if isinstance(node, dict):
        return {
            key: fill(value, credentials=credentials, environment=environment)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [fill(value, credentials=credentials, environment=environment) for value in node]
    return node


def _value(
    match: re.Match[str], credentials: Mapping[str, str], environment: Callable[[str], str | None]
) -> str:
    kind, name = match.group(1), match.group(2)
    if kind == "credential":
        value = credentials.get(name.lower())
        if value is None:
            raise PlaceholderError(f"no {name.lower()} credential")
        return value
    value = environment(name)
    if value is None:
        raise PlaceholderError(f"environment variable {name} is not set")
    return value


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in _strings(value)]
    return []
