"""Parse `/autogen` text into what the user asked for. Pure, so it is tested without Slack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["help", "status", "stop", "credentials", "start"]
KEYWORDS = {"help", "status", "stop", "credentials"}
MAX_TASK_CHARS = 4000


@dataclass(frozen=True)
class Command:
    kind: Kind
    argument: str = ""
    problem: str | None = None


def parse(text: str | None) -> Command:
    text = (text or "").strip()
    if not text:
        return Command("help", problem="Tell me what the team should do: `/autogen <task>`.")
    word, _, rest = text.partition(" ")
    if word.lower() in KEYWORDS and (word.lower() != "help" or not rest.strip()):
        if word.lower() == "stop":
            return Command("stop", rest.strip())
        if rest.strip() and word.lower() != "stop":
            return Command("start", text)
        return Command(word.lower())  # type: ignore[arg-type]
    if len(text) > MAX_TASK_CHARS:
        return Command(
            "help", problem=f"That task is {len(text)} characters; keep it under {MAX_TASK_CHARS}."
        )
    if len(text) < 3:
        return Command("help", problem=f"`{text}` is not a command I know, nor a task.")
    return Command("start", text)
