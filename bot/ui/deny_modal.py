"""The modal that asks why a held tool call is denied (the agent is told the reason)."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot import ids
from bot.ui.text import clip, escape

MAX_REASON_CHARS = 500


def deny_reason_modal(*, action_id: str, tool: str) -> dict[str, Any]:
    view = View(
        type="modal",
        callback_id=ids.TOOL_DENY_MODAL,
        private_metadata=action_id,
        title=PlainTextObject(text="Deny a tool call"),
        submit=PlainTextObject(text="Deny"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"The call to `{clip(escape(tool), 200)}` will not run. The agent is "
                    "told that you denied it, and why."
                )
            ),
            InputBlock(
                block_id=ids.TOOL_DENY_REASON_BLOCK,
                optional=True,
                label=PlainTextObject(text="Reason (optional)"),
                element=PlainTextInputElement(
                    action_id=ids.TOOL_DENY_REASON_INPUT,
                    multiline=True,
                    max_length=MAX_REASON_CHARS,
                    placeholder=PlainTextObject(text="e.g. use the staging repository instead"),
                ),
            ),
        ],
    )
    return view.to_dict()
