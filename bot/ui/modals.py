"""The private credential modal and the ephemeral command answers."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ButtonElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot import ids
from bot.ui.text import clip, escape
from runner.key_input import MAX_SECRET_CHARS

HELP_TEXT = (
    "*AutoGen in Slack*\n"
    "• `/autogen &lt;task&gt;` — start a team run; it works in a thread under a new message\n"
    "• `/autogen status` — your recent runs and their states\n"
    "• `/autogen stop [run id]` — stop a run (your latest active one if no id)\n"
    "• `/autogen credentials` — list or delete your stored keys (values are never shown)\n"
    "• `/autogen help` — this message"
)


def credential_modal(*, request_id: str, provider: str, reason: str) -> dict[str, Any]:
    view = View(
        type="modal",
        callback_id=ids.CREDENTIAL_MODAL,
        private_metadata=request_id,
        title=PlainTextObject(text="Add an API key"),
        submit=PlainTextObject(text="Save key"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"The run needs your *{escape(provider)}* key.\n"
                    f"{clip(escape(reason), 500)}"
                )
            ),
            InputBlock(
                block_id=ids.CREDENTIAL_INPUT_BLOCK,
                label=PlainTextObject(text=f"{provider} API key"[:2000]),
                element=PlainTextInputElement(
                    action_id=ids.CREDENTIAL_INPUT,
                    placeholder=PlainTextObject(text="Paste the key"),
                    max_length=MAX_SECRET_CHARS,
                ),
                hint=PlainTextObject(
                    text="Visible only on your screen while you type. It is stored encrypted "
                    "and never posted, logged or shown to the agents."
                ),
            ),
        ],
    )
    return view.to_dict()


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


__all__ = ["credential_modal", "credentials_list", "help_blocks", "status_blocks"]
