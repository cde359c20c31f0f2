"""Block Kit for the run's root message and its thread. Each function returns
`(text, blocks)`: `text` is the plain fallback Slack uses for notifications and screen readers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextActionsBlock,
    ContextBlock,
    FeedbackButtonObject,
    FeedbackButtonsElement,
    MarkdownTextObject,
    SectionBlock,
)

from bot import ids
from bot.ui.text import clip, escape, plain, split_text, to_mrkdwn
from runner.tool_calls import shorten_arguments, size_label
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
OUTCOME_ICONS = {
    "ok": ":hammer_and_wrench:",
    "error": ":x:",
    "needs_credential": ":key:",
    "key_refused": ":key:",
    "needs_approval": ":lock:",
    "unknown": ":grey_question:",
}
OUTCOME_WORDS = {
    "ok": "ok",
    "error": "failed",
    "needs_credential": "needs a credential",
    "key_refused": "key refused",
    "needs_approval": "waits for approval",
    "unknown": "outcome unknown",
}
TOOL_OUTPUT_SHOWN = 600
ARGUMENTS_PER_SECTION = 2700
MAX_ARGUMENT_SECTIONS = 6  # 16k characters: the runner holds no call with more than 8k
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
    *,
    run_id: str,
    task: str,
    requester_id: str,
    status: str,
    detail: str | None = None,
    team: str | None = None,
) -> Message:
    label = STATUS_LABELS.get(status, status)
    if team:
        label += f" · team `{escape(team)}`"
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
    *,
    source: str,
    content: str,
    turn: int,
    verdict: dict[str, Any] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    results_only: bool = False,
) -> list[Message]:
    """One message per chunk; the tool calls and the verdict (when known) ride on the last
    chunk. The content is escaped before it is converted and split, so chunks and
    fallbacks show it inert. `results_only`: the message is the tools' raw output (an agent
    that does not reflect on tool use), shown short instead of pasted whole."""
    if results_only and len(content) > TOOL_OUTPUT_SHOWN:
        content = content[:TOOL_OUTPUT_SHOWN].rstrip() + (
            f"\n… ({len(content)} characters of tool output, not all shown)"
        )
    chunks = split_text(to_mrkdwn(content))
    messages: list[Message] = []
    for index, chunk in enumerate(chunks):
        header = f"*{escape(source)}* · turn {turn}"
        if len(chunks) > 1:
            header += f" · part {index + 1}/{len(chunks)}"
        blocks: list[Any] = [_context(header), _section(chunk)]
        last = index == len(chunks) - 1
        if last and tool_calls:
            blocks.append(tool_calls_context(tool_calls))
        if last and verdict is not None:
            blocks.append(verdict_context(verdict))
        messages.append((plain(f"{escape(source)}: {chunk}"), _dicts(*blocks)))
    return messages


def tool_calls_context(calls: list[dict[str, Any]]) -> ContextBlock:
    """Each call on one line: tool, shortened arguments, outcome and size (never a
    result, never a credential: the runner scrubbed and shortened the arguments)."""
    shown = [
        f"{OUTCOME_ICONS.get(str(c.get('outcome')), ':grey_question:')} {_call(c)}"
        for c in calls[:8]
    ]
    if len(calls) > 8:
        shown.append(f"… and {len(calls) - 8} more calls")
    return _context(clip("\n".join(shown), 2900))


def _call(call: dict[str, Any]) -> str:
    arguments = clip(escape(str(call.get("arguments") or "")), 200)
    line = f"`{escape(str(call.get('tool')))}` {arguments}".rstrip()
    outcome = str(call.get("outcome") or "")
    line += f" → {OUTCOME_WORDS.get(outcome, escape(outcome))}"
    if outcome == "ok":
        line += f", {size_label(int(call.get('size') or 0))}"
    if call.get("detail"):
        line += f" ({clip(escape(str(call['detail'])), 150)})"
    return line


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


def tool_approval(*, call: dict[str, Any], actions: list[dict[str, Any]]) -> Message:
    """A held tool call: exactly what would run, with Approve and Deny."""
    by_type = {str(a["type"]): a for a in actions}
    arguments = json.dumps(call.get("arguments") or {}, indent=1, ensure_ascii=False)
    tool, agent = escape(str(call.get("tool"))), escape(str(call.get("agent")))
    # All of it is shown (the runner holds no call longer than a few sections), in code
    # blocks a backtick in the arguments cannot close.
    shown = escape(arguments).replace("`", "\u02cb")
    parts = [
        shown[i : i + ARGUMENTS_PER_SECTION] for i in range(0, len(shown), ARGUMENTS_PER_SECTION)
    ]
    blocks = [
        _section(f":lock: *{agent}* wants to run `{tool}` with:"),
        *(_section(f"```{part}```") for part in parts[:MAX_ARGUMENT_SECTIONS]),
        ActionsBlock(
            block_id=ids.ACTIONS_BLOCK,
            elements=[
                ButtonElement(
                    text="Approve",
                    action_id=f"{ids.APPROVE_PREFIX}0",
                    value=str(by_type["approve_tool"]["id"]),
                    style="primary",
                ),
                ButtonElement(
                    text="Deny…",
                    action_id=ids.TOOL_DENY,
                    value=str(by_type["deny_tool"]["id"]),
                    style="danger",
                ),
            ],
        ),
        _context("The requester or an approver can decide. Approved, it runs once, as shown."),
    ]
    return plain(f"{agent} wants to run {tool}: approve or deny"), _dicts(*blocks)


def tool_decided(*, call: dict[str, Any], decided_by: str, approved: bool, note: str) -> Message:
    tool, agent = escape(str(call.get("tool"))), escape(str(call.get("agent")))
    verdict = "approved" if approved else "denied"
    who = (
        f":white_check_mark: Approved by <@{decided_by}>"
        if approved
        else (f":no_entry: Denied by <@{decided_by}>")
    )
    if note:
        who += f": {clip(escape(note), 500)}"
    blocks = [
        _section(
            f":lock: *{agent}* wanted to run `{tool}` ({clip(escape(_arguments(call)), 500)})"
        ),
        _context(who),
    ]
    return plain(f"{tool} {verdict} by {decided_by}"), _dicts(*blocks)


def tool_closed(*, call: dict[str, Any]) -> Message:
    tool = escape(str(call.get("tool")))
    blocks = [
        _section(f":lock: `{tool}` ({clip(escape(_arguments(call)), 500)})"),
        _context("Closed: the run ended before anyone decided."),
    ]
    return plain(f"{tool}: the run ended before anyone decided."), _dicts(*blocks)


def _arguments(call: dict[str, Any]) -> str:
    value = call.get("arguments")
    return shorten_arguments(value) if isinstance(value, dict) else str(value or "")


def tool_running(*, tool: str, arguments: str, decided_by: str) -> Message:
    who = f"<@{decided_by}>" if SLACK_USER_ID.fullmatch(decided_by) else escape(decided_by)
    text = f":gear: Running `{escape(tool)}` {clip(escape(arguments), 300)} (approved by {who})…"
    return plain(f"Running {escape(tool)}"), _dicts(_context(text))


def tool_ran(payload: dict[str, Any]) -> Message:
    icon = OUTCOME_ICONS.get(str(payload.get("outcome")), ":grey_question:")
    line = f"{icon} {_call(payload)}"
    decided_by = str(payload.get("decided_by") or "")
    if SLACK_USER_ID.fullmatch(decided_by):
        line += f" · approved by <@{decided_by}>"
    return plain(f"{escape(str(payload.get('tool')))}: {payload.get('outcome')}"), _dicts(
        _context(line)
    )


def warning(text: str) -> Message:
    return plain(f"Warning: {escape(text)}"), _dicts(_context(f":warning: {escape(text)}"))


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


def run_continued(*, user_id: str) -> Message:
    """A finished run going on from a person's reply in its thread."""
    who = f"<@{user_id}>" if SLACK_USER_ID.fullmatch(user_id) else "Someone"
    text = f":arrow_right_hook: {who} replied, so the run goes on from their reply."
    return plain("The run goes on from a reply."), _dicts(_context(text))


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
    blocks: list[Any] = [
        _section(f"*Run finished.*\n{split_text(outcome, 2500)[0]}"),
        _context(facts),
    ]
    run_id = str(payload.get("run_id") or "")
    if run_id:  # Slack's own thumbs up / down, answered by anyone, one rating per person
        blocks.append(feedback_buttons(run_id))
    return plain(f"Run finished ({status}): {outcome}"), _dicts(*blocks)


def feedback_buttons(run_id: str) -> ContextActionsBlock:
    return ContextActionsBlock(
        block_id=ids.FEEDBACK_BLOCK,
        elements=[
            FeedbackButtonsElement(
                action_id=ids.RUN_FEEDBACK,
                positive_button=FeedbackButtonObject(
                    text="Good result", value=f"good:{run_id}", accessibility_label="Good result"
                ),
                negative_button=FeedbackButtonObject(
                    text="Bad result", value=f"bad:{run_id}", accessibility_label="Bad result"
                ),
            )
        ],
    )
