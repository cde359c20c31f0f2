"""The private credential modal and the checks on what is typed into it.

The checks run before anything is written; their answers are problems, never the value, and
the modal shows a friendly inline error for each.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot import ids
from bot.ui.text import clip, escape
from runner.keys import MAX_SECRET_CHARS, PROBLEMS, SecretProblem, check_secret
from runner.providers import Provider

__all__ = ["PROBLEMS", "SecretProblem", "check_secret"]


def submitted_secret(view: dict[str, Any]) -> str:
    """The key typed into the modal, from a `view_submission` payload's state."""
    values = (view.get("state") or {}).get("values") or {}
    field = (values.get(ids.CREDENTIAL_INPUT_BLOCK) or {}).get(ids.CREDENTIAL_INPUT) or {}
    value = field.get("value")
    return value.strip() if isinstance(value, str) else ""


def credential_modal(*, request_id: str, provider: Provider, reason: str) -> dict[str, Any]:
    """The private key form: which provider, why the run needs it, what kind of key fits
    and where one is made (from the provider table)."""
    about = f"The run needs your *{escape(provider.title)}*.\n{clip(escape(reason), 500)}"
    if provider.hint:
        about += f"\n_{clip(escape(provider.hint), 300)}_"
    if provider.url:
        about += f"\n<{provider.url}|Make one here>"
    view = View(
        type="modal",
        callback_id=ids.CREDENTIAL_MODAL,
        private_metadata=request_id,
        title=PlainTextObject(text="Add an API key"),
        submit=PlainTextObject(text="Save key"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=about)),
            _key_input(
                provider.title,
                "Visible only on your screen while you type. It is stored encrypted and never "
                "posted, logged or shown to the agents.",
            ),
        ],
    )
    return view.to_dict()


def _key_input(label: str, hint: str) -> InputBlock:
    """The field a key is typed into: the same block and limits in every key form, so one
    reader (`submitted_secret`) and one set of checks serve them all."""
    return InputBlock(
        block_id=ids.CREDENTIAL_INPUT_BLOCK,
        label=PlainTextObject(text=label[:2000]),
        element=PlainTextInputElement(
            action_id=ids.CREDENTIAL_INPUT,
            placeholder=PlainTextObject(text="Paste the key"),
            max_length=MAX_SECRET_CHARS,
        ),
        hint=PlainTextObject(text=hint),
    )


def add_key_modal(providers: list[Provider]) -> dict[str, Any]:
    """Add a key without a run asking for it (from the Home tab): which provider, and the key."""
    options = [Option(text=f"{p.title} ({p.name})"[:75], value=p.name) for p in providers[:100]]
    view = View(
        type="modal",
        callback_id=ids.CREDENTIAL_ADD_MODAL,
        title=PlainTextObject(text="Add an API key"),
        submit=PlainTextObject(text="Save key"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            InputBlock(
                block_id=ids.CREDENTIAL_PROVIDER_BLOCK,
                label=PlainTextObject(text="Provider"),
                element=StaticSelectElement(
                    action_id=ids.CREDENTIAL_PROVIDER_INPUT,
                    placeholder=PlainTextObject(text="Choose the provider"),
                    options=options,
                ),
            ),
            _key_input(
                "API key",
                "Stored encrypted for you alone and never posted, logged or shown to the "
                "agents. It replaces a key you stored before for the same provider.",
            ),
        ],
    )
    return view.to_dict()


def submitted_provider(view: dict[str, Any]) -> str:
    values = (view.get("state") or {}).get("values") or {}
    field = (values.get(ids.CREDENTIAL_PROVIDER_BLOCK) or {}).get(
        ids.CREDENTIAL_PROVIDER_INPUT
    ) or {}
    selected = field.get("selected_option") or {}
    value = selected.get("value") if isinstance(selected, dict) else None
    return value if isinstance(value, str) else ""
