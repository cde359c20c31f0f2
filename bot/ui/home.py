"""The App Home tab: a person's recent runs, their stored keys (with Delete and Add), and the
teams they can pick. Built from plain values, like every other surface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot import ids
from bot.ui.blocks import STATUS_LABELS
from bot.ui.modals import key_row
from bot.ui.text import clip, escape

MAX_RUNS = 10
MAX_KEYS = 20
MAX_TEAMS = 15


@dataclass(frozen=True)
class HomeRun:
    run_id: str
    status: str
    task: str
    channel_id: str
    link: str | None  # the run's thread, when the workspace's address is known


def home_view(
    *,
    runs: list[HomeRun],
    keys: list[tuple[str, str]],
    teams: list[tuple[str, str]],
) -> dict[str, Any]:
    """`keys`: (provider, facts such as "added 2026-12-01, never used")."""
    blocks: list[Any] = [HeaderBlock(text="Your AutoGen runs")]
    if not runs:
        blocks.append(_text("No runs yet. Start one with `/autogen <task>` or `@AutoGen <task>`."))
    for run in runs[:MAX_RUNS]:
        label = STATUS_LABELS.get(run.status, escape(run.status))
        if not run.channel_id:  # started from the web API: it has no thread in Slack
            where = "started from the web API"
        elif run.link:
            where = f"<{run.link}|thread in <#{run.channel_id}>>"
        else:
            where = f"<#{run.channel_id}>"
        blocks.append(
            _text(f"{label} · {clip(escape(run.task), 150)}\n{where} · run `{run.run_id}`")
        )
    blocks += [DividerBlock(), HeaderBlock(text="Your keys")]
    if not keys:
        blocks.append(_text("No stored keys. A run asks for one when it needs it."))
    blocks.extend(key_row(provider, facts) for provider, facts in keys[:MAX_KEYS])
    blocks.append(
        ActionsBlock(
            block_id="home_keys",
            elements=[ButtonElement(text="Add a key", action_id=ids.CREDENTIAL_ADD, value="add")],
        )
    )
    blocks.append(
        ContextBlock(
            elements=[MarkdownTextObject(text="Keys are stored encrypted and never shown again.")]
        )
    )
    blocks += [DividerBlock(), HeaderBlock(text="Teams")]
    rows = [
        f"• `{escape(name)}` — {clip(escape(text), 150) or 'no description'}"
        for name, text in teams[:MAX_TEAMS]
    ]
    blocks.append(_text("\n".join(rows) + "\nPick one with `/autogen --team NAME <task>`."))
    return {"type": "home", "blocks": [block.to_dict() for block in blocks]}


def _text(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, 2900)))
