"""How each kind of run event shows in the thread: one table, looked up by kind.

Each entry says what to render from the event's payload and how it relates to earlier
messages: `annotates` names the earlier message it is shown on (a verdict on the agent
message it judges, an answer on the prompt it answers) and that message is updated in
place, else the rendering is posted; `opens` names the prompt it asks (its buttons stay
live until answered or the run ends); `answers` means it closes the prompt it annotates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.ui import blocks as ui
from store import events as ev
from store.outbox import Shown

Payload = dict[str, Any]
Lookup = tuple[str, int | str]  # ("seq", n): event n's message; ("topic", t): prompt t


def request_topic(request_id: object) -> str:
    return f"request:{request_id}"


def offer_topic(offer_id: object) -> str:
    return f"offer:{offer_id}"


@dataclass(frozen=True)
class Rendering:
    render: Callable[[Payload, Shown | None], list[ui.Message]]
    annotates: Callable[[Payload], Lookup] | None = None
    opens: Callable[[Payload], str] | None = None
    answers: bool = False
    is_root: bool = False  # shown by the root message itself (no post)
    ends_run: bool = False  # close open prompts and finalise the root first
    author: Callable[[Payload], dict[str, str] | None] | None = None  # who it is posted as
    silent: bool = False  # for the team only: nothing shows (a person's reply is theirs)


def _agent_message(payload: Payload, _: Shown | None) -> list[ui.Message]:
    return ui.agent_message(**_spoken(payload))


def _spoken(payload: Payload) -> dict[str, Any]:
    return {
        "source": payload["source"],
        "content": payload["content"],
        "turn": payload["turn"],
        "tool_calls": payload.get("tool_calls"),
        "results_only": payload.get("message_type") == "ToolCallSummaryMessage",
    }


def _verdict(payload: Payload, judged: Shown | None) -> list[ui.Message]:
    """The judged message again with the verdict under it; alone if it was never shown."""
    if judged is None:
        return [(str(payload.get("verdict")), [ui.verdict_context(payload).to_dict()])]
    parts = ui.agent_message(**_spoken(judged.event.payload), verdict=payload)
    return parts[-1:]


def _key_request(payload: Payload, _: Shown | None) -> list[ui.Message]:
    return [
        ui.credential_request(
            user_id=payload["user_id"],
            provider=payload["provider"],
            reason=payload["reason"],
            request_id=payload["request_id"],
            rejected=bool(payload.get("rejected")),
        )
    ]


def _key_received(payload: Payload, _: Shown | None) -> list[ui.Message]:
    return [ui.credential_received(user_id=payload["user_id"], provider=payload["provider"])]


def _offer(payload: Payload, _: Shown | None) -> list[ui.Message]:
    if payload.get("tool_call"):
        return [ui.tool_approval(call=payload["tool_call"], actions=payload["actions"])]
    return [ui.actions_offered(reason=payload["reason"], actions=payload["actions"])]


def _decided(payload: Payload, offer: Shown | None) -> list[ui.Message]:
    if payload.get("tool_call"):
        return [
            ui.tool_decided(
                call=payload["tool_call"],
                decided_by=payload["decided_by"],
                approved=payload.get("type") == "approve_tool",
                note=str(payload.get("note") or ""),
            )
        ]
    reason = str(offer.event.payload.get("reason", "")) if offer else ""
    return [
        ui.action_decided(
            reason=reason,
            label=payload["label"],
            decided_by=payload["decided_by"],
            auto=bool(payload.get("auto")),
        )
    ]


RENDERINGS: dict[str, Rendering] = {
    ev.RUN_STARTED: Rendering(lambda _p, _s: [], is_root=True),
    ev.AGENT_MESSAGE: Rendering(_agent_message, author=lambda p: p.get("identity")),
    ev.VERIFIER_RESULT: Rendering(_verdict, annotates=lambda p: ("seq", int(p["agent_seq"]))),
    ev.CREDENTIAL_REQUEST: Rendering(_key_request, opens=lambda p: request_topic(p["request_id"])),
    ev.CREDENTIAL_RECEIVED: Rendering(
        _key_received, annotates=lambda p: ("topic", request_topic(p["request_id"])), answers=True
    ),
    ev.ACTIONS_OFFERED: Rendering(_offer, opens=lambda p: offer_topic(p["offer_id"])),
    ev.ACTION_RESULT: Rendering(
        _decided, annotates=lambda p: ("topic", offer_topic(p["offer_id"])), answers=True
    ),
    ev.TOOL_CALL_STARTED: Rendering(
        lambda p, _s: [
            ui.tool_running(tool=p["tool"], arguments=p["arguments"], decided_by=p["decided_by"])
        ]
    ),
    ev.TOOL_RESULT: Rendering(
        lambda p, _s: [ui.tool_ran(p)], annotates=lambda p: ("seq", int(p.get("started_seq") or 0))
    ),
    ev.HUMAN_REPLY: Rendering(lambda _p, _s: [], silent=True),
    ev.RUN_CONTINUED: Rendering(
        lambda p, _s: [ui.run_continued(user_id=str(p.get("user_id", "")))]
    ),
    ev.INFO: Rendering(lambda p, _s: [ui.info(str(p.get("text", "")))]),
    ev.WARNING: Rendering(lambda p, _s: [ui.warning(str(p.get("text", "")))]),
    ev.ERROR: Rendering(lambda p, _s: [ui.error(str(p.get("text", "")))]),
    ev.FINISHED: Rendering(lambda p, _s: [ui.summary(p)], ends_run=True),
}

ROOT_REFRESH_KINDS = frozenset(
    {
        ev.RUN_STARTED,
        ev.AGENT_MESSAGE,
        ev.CREDENTIAL_REQUEST,
        ev.CREDENTIAL_RECEIVED,
        ev.ACTIONS_OFFERED,
        ev.ACTION_RESULT,
        ev.RUN_CONTINUED,
        ev.FINISHED,
    }
)
"""Kinds after which the root message's status may have changed."""


def closed_prompt(prompt: Shown) -> ui.Message:
    """A prompt nobody answered before the run ended, without its buttons."""
    payload = prompt.event.payload
    if prompt.event.kind == ev.CREDENTIAL_REQUEST:
        return ui.credential_closed(provider=payload["provider"], status="the run ended")
    if payload.get("tool_call"):
        return ui.tool_closed(call=payload["tool_call"])
    return ui.actions_closed(reason=payload.get("reason", ""))
