"""Parse `/autogen` text into what the user asked for. Pure, so it is tested without Slack."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.ui.text import escape
from store.records import MAX_TASK_CHARS
from store.work import looks_like_id

Kind = Literal["help", "status", "stop", "credentials", "teams", "start"]
KEYWORDS = {"help", "status", "stop", "credentials", "teams"}
TEAM_OPTION = re.compile(r"^--team(?:=|\s+)(\S+)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Command:
    kind: Kind
    argument: str = ""
    problem: str | None = None
    team: str | None = None  # `--team NAME`: which team of TEAMS_DIR runs the task


def unescape_slack(text: str) -> str:
    """Slack sends `&`, `<` and `>` in command text as entities; the team gets what the
    user typed (it is escaped again wherever it is shown)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse(text: str | None) -> Command:
    """A keyword alone is a command, and so is `stop <run id>`; anything else is a task, so
    `stop using passive voice in this text` starts a run instead of stopping one."""
    text = unescape_slack(text or "").strip()
    team = None
    option = TEAM_OPTION.match(text)
    if option is not None:
        team, text = option.group(1).strip("`").lower(), text[option.end() :].strip()
        if not text:
            return Command(
                "help", problem=f"Say what team `{escape(team)}` should do after its name."
            )
    elif text.lower().startswith("--team"):
        return Command("help", problem="Name the team: `/autogen --team NAME &lt;task&gt;`.")
    if not text:
        return Command("help", problem="Tell me what the team should do: `/autogen &lt;task&gt;`.")
    word, *rest = text.split(maxsplit=1)
    word = word.lower()
    argument = rest[0].strip("`").strip().lower() if rest else ""
    if word in KEYWORDS and not rest and team is None:
        return Command(word)  # type: ignore[arg-type]
    if word == "stop" and looks_like_id(argument) and team is None:
        return Command("stop", argument)
    if len(text) > MAX_TASK_CHARS:
        return Command(
            "help", problem=f"That task is {len(text)} characters; keep it under {MAX_TASK_CHARS}."
        )
    if len(text) < 3:
        return Command("help", problem=f"`{escape(text)}` is not a command I know, nor a task.")
    return Command("start", text, team=team)
