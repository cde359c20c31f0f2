"""What the agents' tool calls did during a turn, as values the run's events can carry.

The workbench records every call it handles in the claim's `ToolLedger`: which tool, with
which arguments, how it ended and how much it returned. The executor attaches the turn's
records to the agent message they led to (shown in the thread, judged by the verifier) and
parks the run when a call asked for a credential or a person's approval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from autogen_agentchat.messages import ToolCallExecutionEvent, ToolCallRequestEvent

from store.key_requests import KeyWanted

ARGUMENTS_SHOWN_CHARS = 300
TOOL_NOTE = "\n\n[Tool calls in this turn: "


class Outcome(StrEnum):
    OK = "ok"
    ERROR = "error"
    NEEDS_CREDENTIAL = "needs_credential"
    KEY_REFUSED = "key_refused"
    NEEDS_APPROVAL = "needs_approval"
    UNKNOWN = "unknown"  # the process stopped during the call


@dataclass
class ToolCallRecord:
    call_id: str
    tool: str  # the qualified name people see and TOOL_APPROVAL matches: "github.create_issue"
    arguments: dict[str, Any]
    outcome: Outcome = Outcome.OK
    size: int = 0  # characters the tool returned
    detail: str = ""  # a short safe phrase: why it failed, who approved it

    def payload(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "arguments": shorten_arguments(self.arguments),
            "outcome": str(self.outcome),
            "size": self.size,
            **({"detail": self.detail[:300]} if self.detail else {}),
        }


@dataclass(frozen=True)
class PendingApproval:
    """A call that TOOL_APPROVAL held back: exactly what a person is asked to approve."""

    agent: str
    tool: str
    arguments: dict[str, Any]
    call_id: str

    def params(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "tool": self.tool,
            "arguments": self.arguments,
            "call_id": self.call_id,
        }


@dataclass
class ToolLedger:
    """The current turn's calls, and what they want before the run may go on."""

    calls: dict[str, ToolCallRecord] = field(default_factory=dict)
    wanted: list[KeyWanted] = field(default_factory=list)
    approval: PendingApproval | None = None

    def want(self, wanted: KeyWanted) -> None:
        if all(w.provider != wanted.provider for w in self.wanted):
            self.wanted.append(wanted)


def shorten_arguments(arguments: dict[str, Any], limit: int = ARGUMENTS_SHOWN_CHARS) -> str:
    """`key=value, ...` in one line, cut to `limit` characters (values as JSON)."""
    parts = []
    for key, value in arguments.items():
        shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
        parts.append(f"{key}={json.dumps(shown, ensure_ascii=False)[:120]}")
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def size_label(chars: int) -> str:
    if chars < 1000:
        return f"{chars} chars"
    return f"{chars / 1000:.1f}k chars"


def call_line(call: dict[str, Any]) -> str:
    """One call as plain text: `fetch_url(url="https://…") → ok, 2.1k chars`."""
    outcome = str(call.get("outcome", ""))
    line = f"{call.get('tool')}({call.get('arguments', '')}) → {outcome.replace('_', ' ')}"
    if outcome == Outcome.OK:
        line += f", {size_label(int(call.get('size') or 0))}"
    if call.get("detail"):
        line += f" ({call['detail']})"
    return line


def judged_text(content: str, tool_calls: list[dict[str, Any]] | None) -> str:
    """What the verifier reads for a message: its text and the turn's tool calls."""
    if not tool_calls:
        return content
    return content + TOOL_NOTE + "; ".join(call_line(call) for call in tool_calls) + "]"


def without_tool_note(text: str) -> str:
    return text.split(TOOL_NOTE, 1)[0]


def turn_tool_calls(items: list[Any], ledger: ToolLedger) -> list[dict[str, Any]]:
    """The turn's tool calls in the order the model made them, as event payloads. A call
    that never reached the workbench (arguments that were not JSON, an unknown tool) is
    shown with the error AutoGen answered it with."""
    results = {
        result.call_id: result
        for item in items
        if isinstance(item, ToolCallExecutionEvent)
        for result in item.content
    }
    calls: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, ToolCallRequestEvent):
            continue
        for call in item.content:
            record = ledger.calls.pop(call.id, None)
            if record is None:
                answered = results.get(call.id)
                detail = answered.content[:120] if answered is not None else "no result"
                record = ToolCallRecord(
                    call.id, call.name, _parsed(call.arguments), Outcome.ERROR, detail=detail
                )
            calls.append(record.payload())
    return calls


def _parsed(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"arguments": arguments[:200]}
    return value if isinstance(value, dict) else {"arguments": value}
