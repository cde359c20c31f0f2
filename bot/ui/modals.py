"""The ephemeral command answers: help, status, the list of stored keys."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ButtonElement, ContextBlock, MarkdownTextObject, SectionBlock

from bot import ids
from bot.ui.text import clip, escape

HELP_TEXT = (
    "*AutoGen in Slack*\n"
    "• `/autogen &lt;task&gt;` — start a team run; it works in a thread under a new message\n"
    "• `/autogen --team NAME &lt;task&gt;` — run it with another team (`/autogen teams`)\n"
    "• `@AutoGen &lt;task&gt;` in a channel — a run in that message's thread\n"
    "• `/autogen status` — your recent runs and their states\n"
    "• `/autogen stop [run id]` — stop a run (your latest active one if no id)\n"
    "• `/autogen credentials` — list or delete your stored keys (values are never shown)\n"
    "• `/autogen help` — this message"
)


TEAMS_TEXT_LIMIT = 2900


def help_blocks(prefix: str | None = None) -> list[dict[str, Any]]:
    text = f"{prefix}\n\n{HELP_TEXT}" if prefix else HELP_TEXT
    return [SectionBlock(text=MarkdownTextObject(text=text)).to_dict()]


def key_row(provider: str, facts: str) -> SectionBlock:
    """One stored key (never its value) with its Delete button."""
    return SectionBlock(
        text=MarkdownTextObject(text=f"*{escape(provider)}* — {escape(facts)}"),
        accessory=ButtonElement(
            text="Delete", action_id=ids.CREDENTIAL_DELETE, value=provider[:64], style="danger"
        ),
    )


def credentials_list(providers: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """(provider, 'added … / last used …') rows, each with a Delete button."""
    if not providers:
        return [SectionBlock(text=MarkdownTextObject(text="You have no stored keys.")).to_dict()]
    blocks: list[Any] = [
        SectionBlock(text=MarkdownTextObject(text="*Your stored keys* (values are never shown)"))
    ]
    blocks.extend(key_row(provider, facts) for provider, facts in providers[:45])
    blocks.append(
        ContextBlock(elements=[MarkdownTextObject(text="A deleted key is gone for good.")])
    )
    return [block.to_dict() for block in blocks]


def status_blocks(rows: list[str]) -> list[dict[str, Any]]:
    text = "*Your recent runs*\n" + "\n".join(rows) if rows else "You have no runs yet."
    return [SectionBlock(text=MarkdownTextObject(text=text[:3000])).to_dict()]


def teams_blocks(teams: list[tuple[str, str]], prefix: str | None = None) -> list[dict[str, Any]]:
    """(name, description) rows: the teams `/autogen --team NAME` can pick. `prefix` is
    the app's own mrkdwn (escape anything a user typed in it). As many rows as fit in one
    section, then how many more there are."""
    text = (f"{prefix}\n\n" if prefix else "") + "*Teams*"
    for shown, (name, description) in enumerate(teams):
        row = f"\n• `{escape(name)}` — {clip(escape(description), 200) or 'no description'}"
        if len(text) + len(row) > TEAMS_TEXT_LIMIT:
            text += f"\n… and {len(teams) - shown} more"
            break
        text += row
    usage = "Pick one with `/autogen --team NAME &lt;task&gt;`; without `--team`, `default` runs."
    return [
        SectionBlock(text=MarkdownTextObject(text=text)).to_dict(),
        ContextBlock(elements=[MarkdownTextObject(text=usage)]).to_dict(),
    ]
