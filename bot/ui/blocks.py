"""Block Kit for the run's root message and its thread. Each function returns
`(text, blocks)`: `text` is the plain fallback Slack uses for notifications and screen readers.
"""

from __future__ import annotations

import re
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot import ids
from bot.ui.text import clip, escape, plain, split_text, to_mrkdwn
from store.records import FINISHED_STATUSES

Message = tuple[str, list[dict[str, Any]]]

STATUS_LABELS = {
    "queued": ":hourglass_flowing_sand: Queued",
    "running": ":gear: Running",
    "waiting_credential": ":key: Waiting for a key",
    "waiting_approval": ":raised_hand: Waiting for approval",
    "completed": ":white_check_mark: Completed",
    "failed": ":x: Failed",
    "cancelled": ":no_entry_sign: Cancelled",
    "interrupted": ":warning: Interrupted",
}
VERDICT_LABELS = {
    "pass": ":large_green_circle: Verifier: pass",
    "fail": ":red_circle: Verifier: fail",
    "uncertain": ":large_yellow_circle: Verifier: uncertain",
}


def _dicts(*blocks: Any) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, 3000)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text, 3000))])


def root_message(
    *, run_id: str, task: str, requester_id: str, status: str, detail: str | None = None
) -> Message:
    label = STATUS_LABELS.get(status, status)
    task_text = split_text(escape(task), 2500)[0]
    blocks: list[Any] = [
        _section(
            f"*AutoGen run* for <@{requester_id}>\n>{task_text.replace(chr(10), chr(10) + '>')}"
        ),
        _context(
            f"{label} · run `{run_id}`" + (f" · {clip(escape(detail), 300)}" if detail else "")
        ),
    ]
    if status not in FINISHED_STATUSES:
        blocks.append(
            ActionsBlock(
                block_id="run_controls",
                elements=[
                    ButtonElement(text="Stop", action_id=ids.STOP_RUN, value=run_id, style="danger")
                ],
            )
        )
    return plain(f"AutoGen run for {requester_id}: {escape(task)} ({status})"), _dicts(*blocks)


def agent_message(
    *, source: str, content: str, turn: int, verdict: dict[str, Any] | None = None
) -> list[Message]:
    """One message per chunk; the verdict (when known) rides on the last chunk. The content
    is escaped before it is converted and split, so chunks and fallbacks show it inert."""
    chunks = split_text(to_mrkdwn(content))
    messages: list[Message] = []
    for index, chunk in enumerate(chunks):
        header = f"*{escape(source)}* · turn {turn}"
        if len(chunks) > 1:
            header += f" · part {index + 1}/{len(chunks)}"
        blocks: list[Any] = [_context(header), _section(chunk)]
        last = index == len(chunks) - 1
        if last and verdict is not None:
            blocks.append(verdict_context(verdict))
        messages.append((plain(f"{escape(source)}: {chunk}"), _dicts(*blocks)))
    return messages


def verdict_context(verdict: dict[str, Any]) -> ContextBlock:
    label = VERDICT_LABELS.get(str(verdict.get("verdict")), ":grey_question: Verifier")
    reason = clip(escape(str(verdict.get("reason") or "")), 600)
    return _context(f"{label} — {reason}" if reason else label)


def credential_request(
    *, user_id: str, provider: str, reason: str, request_id: str, rejected: bool
) -> Message:
    intro = (
        f":key: <@{user_id}>, the {escape(provider)} key that was used was *rejected*. "
        if rejected
        else f":key: <@{user_id}>, this run needs your *{escape(provider)}* key. "
    )
    blocks = [
        _section(intro + clip(escape(reason), 500)),
        ActionsBlock(
            block_id="credential_actions",
            elements=[
                ButtonElement(
                    text=f"Add your {provider} key"[:75],
                    action_id=ids.CREDENTIAL_OPEN,
                    value=request_id,
                    style="primary",
                )
            ],
        ),
        _context("Only you can open this. The key is stored encrypted and never shown again."),
    ]
    return plain(f"This run needs {user_id}'s {escape(provider)} key."), _dicts(*blocks)


def credential_received(*, user_id: str, provider: str) -> Message:
    text = (
        f":white_check_mark: <@{user_id}> added their {escape(provider)} key "
        "(stored encrypted). Resuming…"
    )
    return plain(f"Key received for {escape(provider)}. Resuming."), _dicts(_section(text))


def credential_closed(*, provider: str, status: str) -> Message:
    text = f":lock: The request for a {escape(provider)} key is closed ({status})."
    return plain(text), _dicts(_section(text))


def actions_offered(*, reason: str, actions: list[dict[str, Any]]) -> Message:
    buttons = [
        ButtonElement(
            text=str(action["label"])[:75] or str(action["type"]),
            action_id=f"{ids.APPROVE_PREFIX}{index}",
            value=str(action["id"]),
            style="primary" if index == 0 else None,
        )
        for index, action in enumerate(actions[:25])
    ]
    blocks = [
        _section(
            f":raised_hand: *The verifier suggests a decision.*\n{clip(escape(reason), 2000)}"
        ),
        ActionsBlock(block_id=ids.ACTIONS_BLOCK, elements=buttons),
        _context("The requester or an approver can choose."),
    ]
    return plain(f"The verifier suggests a decision: {escape(reason)}"), _dicts(*blocks)


def action_decided(*, reason: str, label: str, decided_by: str, auto: bool) -> Message:
    who = "applied automatically (AUTO_APPLY)" if auto else f"chosen by <@{decided_by}>"
    blocks = [
        _section(
            f":raised_hand: *The verifier suggested a decision.*\n{clip(escape(reason), 2000)}"
        ),
        _context(f"*{escape(label)}* — {who}"),
    ]
    return plain(f"{escape(label)}: {who}"), _dicts(*blocks)


def actions_closed(*, reason: str) -> Message:
    blocks = [
        _section(
            f":raised_hand: *The verifier suggested a decision.*\n{clip(escape(reason), 2000)}"
        ),
        _context("Closed: the run ended before anyone decided."),
    ]
    return plain("The run ended before anyone decided."), _dicts(*blocks)


def info(text: str) -> Message:
    return plain(escape(text)), _dicts(_context(f":information_source: {escape(text)}"))


def error(text: str) -> Message:
    return plain(f"Error: {escape(text)}"), _dicts(_section(f":warning: *Error:* {escape(text)}"))


SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{1,20}")


def _duration(payload: dict[str, Any]) -> str:
    """Wall-clock time, and the working part of it when a wait for a person was long."""
    total = float(payload.get("duration_s") or 0)
    working = float(payload.get("working_s") or 0)
    if working and total - working >= 60:
        return f"{working:g} s working, {_span(total)} in all"
    return f"{total:g} s"


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def summary(payload: dict[str, Any]) -> Message:
    status = str(payload.get("status"))
    tokens = int(payload.get("prompt_tokens") or 0) + int(payload.get("completion_tokens") or 0)
    facts = (
        f"{STATUS_LABELS.get(status, status)} · {payload.get('turns', 0)} turns · "
        f"{tokens} tokens · {_duration(payload)}"
    )
    cancelled_by = str(payload.get("cancelled_by") or "")
    if status == "cancelled" and SLACK_USER_ID.fullmatch(cancelled_by):
        outcome = f"Cancelled by <@{cancelled_by}>."  # the app's words: a real mention
    else:
        outcome = to_mrkdwn(str(payload.get("outcome") or ""))
    blocks = [_section(f"*Run finished.*\n{split_text(outcome, 2500)[0]}"), _context(facts)]
    return plain(f"Run finished ({status}): {outcome}"), _dicts(*blocks)
