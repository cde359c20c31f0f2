"""A run's events as the web API shows them: the original design's names and shapes.

The store's log is the one record of a run (`store.events`); this is a view of it for
programs, each event with its sequence number so a client that reconnects with the last
number it saw gets the rest and nothing twice. Names and fields are the original API's
(`agent_message {sender, recipient, content, ts}`, `verifier_result`, `credential_request`,
`action_result`, `info`, `error`, `finished`); kinds that design did not have get names in
the same style. Nothing secret is in the log, so nothing secret can be in a view of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from store import events as ev
from store.records import RunEvent

Payload = dict[str, Any]
Shape = Callable[[Payload], tuple[str, Payload]]
TEAM = "team"  # whom an agent's message in a group chat is for: everyone in it


def _agent_message(p: Payload) -> tuple[str, Payload]:
    shown: Payload = {
        "sender": p.get("source", ""),
        "recipient": TEAM,
        "content": p.get("content", ""),
        "turn": p.get("turn"),
    }
    if p.get("tool_calls"):
        shown["tool_calls"] = p["tool_calls"]
    if p.get("identity"):
        shown["identity"] = p["identity"]
    return "agent_message", shown


def _verifier_result(p: Payload) -> tuple[str, Payload]:
    return "verifier_result", {
        "verdict": p.get("verdict"),
        "reason": p.get("reason", ""),
        "suggested_actions": p.get("suggested_actions") or [],
        "agent_seq": p.get("agent_seq"),
    }


def _credential_request(p: Payload) -> tuple[str, Payload]:
    return "credential_request", {
        "provider": p.get("provider", ""),
        "description": p.get("reason", ""),
        "request_id": p.get("request_id", ""),
        "user_id": p.get("user_id", ""),
        "rejected": bool(p.get("rejected")),
    }


def _actions_offered(p: Payload) -> tuple[str, Payload]:
    actions = [
        {"id": a.get("id"), "type": a.get("type"), "label": a.get("label")}
        for a in p.get("actions") or []
    ]
    shown: Payload = {
        "reason": p.get("reason", ""),
        "offer_id": p.get("offer_id"),
        "actions": actions,
    }
    if p.get("tool_call"):
        shown["tool_call"] = p["tool_call"]
    return "actions_offered", shown


def _action_result(p: Payload) -> tuple[str, Payload]:
    detail = {
        key: p[key]
        for key in ("label", "decided_by", "auto", "note", "tool_call", "offer_id", "action_id")
        if key in p
    }
    return "action_result", {"action": p.get("type"), "detail": detail}


_MENTION = re.compile(r"<@([A-Za-z0-9._\-]+)>")


def plain(text: str | None) -> str | None:
    """Slack's mention markup (`<@U123>`, in a run's outcome) as a reader reads it: `@U123`."""
    return _MENTION.sub(r"@\1", text) if text else text


def _finished(p: Payload) -> tuple[str, Payload]:
    keys = ("status", "turns", "prompt_tokens", "completion_tokens", "duration_s")
    return "finished", {"outcome": plain(p.get("outcome")), **{key: p.get(key) for key in keys}}


SHAPES: dict[str, Shape] = {
    ev.RUN_STARTED: lambda p: ("started", {"task": p.get("task", ""), "team": p.get("team")}),
    ev.AGENT_MESSAGE: _agent_message,
    ev.VERIFIER_RESULT: _verifier_result,
    ev.CREDENTIAL_REQUEST: _credential_request,
    ev.CREDENTIAL_RECEIVED: lambda p: (
        "credential_received",
        {"provider": p.get("provider", ""), "request_id": p.get("request_id", "")},
    ),
    ev.ACTIONS_OFFERED: _actions_offered,
    ev.ACTION_RESULT: _action_result,
    ev.TOOL_CALL_STARTED: lambda p: (
        "tool_call",
        {"tool": p.get("tool"), "arguments": p.get("arguments"), "decided_by": p.get("decided_by")},
    ),
    ev.TOOL_RESULT: lambda p: (
        "tool_result",
        {key: p.get(key) for key in ("tool", "arguments", "outcome", "size", "detail")},
    ),
    ev.HUMAN_REPLY: lambda p: (
        "reply",
        {"user_id": p.get("user_id", ""), "text": p.get("text", "")},
    ),
    ev.RUN_CONTINUED: lambda p: (
        "info",
        {"text": "The run goes on from a reply.", "by": p.get("user_id")},
    ),
    ev.INFO: lambda p: ("info", {"text": p.get("text", "")}),
    ev.WARNING: lambda p: ("info", {"text": p.get("text", ""), "level": "warning"}),
    ev.ERROR: lambda p: ("error", {"text": p.get("text", ""), "code": p.get("code")}),
    ev.FINISHED: _finished,
}


def public_event(event: RunEvent) -> Payload:
    """One event for a web client: `{"seq", "type", "ts", ...its fields}`. A kind this
    view does not know is passed on as `info` rather than dropped, so a client's sequence
    numbers never have a gap."""
    shape = SHAPES.get(event.kind)
    kind, fields = shape(event.payload) if shape else ("info", {"text": "", "kind": event.kind})
    return {"seq": event.seq, "type": kind, "ts": event.created_at.isoformat(), **fields}
