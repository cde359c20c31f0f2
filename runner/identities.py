"""How each agent is shown as the author of its messages: a display name and an icon.

Taken from the agent's `metadata` in the team JSON (`slack_name`, and `slack_icon_emoji`
such as ":owl:" or `slack_icon_url`), else a stable default from the agent's name: the
same agent looks the same in every run and on every replica.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

DEFAULT_ICONS = (
    ":robot_face:",
    ":owl:",
    ":fox_face:",
    ":octopus:",
    ":bee:",
    ":penguin:",
    ":turtle:",
    ":whale:",
    ":hedgehog:",
    ":parrot:",
    ":crab:",
    ":koala:",
)
EMOJI = re.compile(r"^:[a-z0-9_+\-']{1,60}:$")
MAX_NAME_CHARS = 80  # Slack's limit on a message's username


def identity_for(name: str, metadata: dict[str, Any] | None) -> dict[str, str]:
    """{"name": ..., "icon_emoji" | "icon_url": ...} for the agent called `name`."""
    metadata = metadata or {}
    shown = str(metadata.get("slack_name") or "").strip() or _default_name(name)
    identity = {"name": shown[:MAX_NAME_CHARS]}
    icon_url = str(metadata.get("slack_icon_url") or "").strip()
    icon_emoji = str(metadata.get("slack_icon_emoji") or "").strip()
    if icon_url.startswith("https://") and len(icon_url) <= 500:
        identity["icon_url"] = icon_url
    elif EMOJI.fullmatch(icon_emoji):
        identity["icon_emoji"] = icon_emoji
    else:
        digest = hashlib.sha256(name.encode()).digest()
        identity["icon_emoji"] = DEFAULT_ICONS[digest[0] % len(DEFAULT_ICONS)]
    return identity


def _default_name(name: str) -> str:
    words = re.sub(r"[_\-]+", " ", name).strip()
    return (words[:1].upper() + words[1:]) if words else "Agent"


def team_identities(participants: list[Any]) -> dict[str, dict[str, str]]:
    """Every participant's identity, by agent name."""
    return {
        str(agent.name): identity_for(str(agent.name), getattr(agent, "_metadata", None))
        for agent in participants
    }
