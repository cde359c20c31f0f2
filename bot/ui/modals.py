"""The ephemeral command answers: help, status, the list of stored keys."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ButtonElement, ContextBlock, MarkdownTextObject, SectionBlock

from bot import ids
from bot.ui.text import escape

HELP_TEXT = (
    "*AutoGen in Slack*\n"
    "• `/autogen &lt;task&gt;` — start a team run; it works in a thread under a new message\n"
    "• `/autogen status` — your recent runs and their states\n"
    "• `/autogen stop [run id]` — stop a run (your latest active one if no id)\n"
    "• `/autogen credentials` — list or delete your stored keys (values are never shown)\n"
    "• `/autogen help` — this message"
)


def help_blocks(prefix: str | None = None) -> list[dict[str, Any]]:
    text = f"{prefix}\n\n{HELP_TEXT}" if prefix else HELP_TEXT
    return [SectionBlock(text=MarkdownTextObject(text=text)).to_dict()]


def credentials_list(providers: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """(provider, 'added … / last used …') rows, each with a Delete button."""
    if not providers:
        return [SectionBlock(text=MarkdownTextObject(text="You have no stored keys.")).to_dict()]
    blocks: list[Any] = [
        SectionBlock(text=MarkdownTextObject(text="*Your stored keys* (values are never shown)"))
    ]
    for provider, facts in providers[:45]:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(text=f"*{escape(provider)}* — {facts}"),
                accessory=ButtonElement(
                    text="Delete",
                    action_id=ids.CREDENTIAL_DELETE,
                    value=provider,
                    style="danger",
                ),
            )
        )
    blocks.append(
        ContextBlock(elements=[MarkdownTextObject(text="A deleted key is gone for good.")])
    )
    return [block.to_dict() for block in blocks]


def status_blocks(rows: list[str]) -> list[dict[str, Any]]:
    text = "*Your recent runs*\n" + "\n".join(rows) if rows else "You have no runs yet."
    return [SectionBlock(text=MarkdownTextObject(text=text[:3000])).to_dict()]
