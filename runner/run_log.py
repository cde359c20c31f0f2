"""What a run has said so far, read once from its events when it is claimed.

The store is the memory: a claimed run rebuilds its verifier context from here, learns
whether its team had already ended, finds a message saved just before a crash whose verdict
was never written, sees which credentials arrived since its last message and which replies
in its thread the team has not read yet, and where its limits count from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.tool_calls import judged_text
from store import events as ev
from store.records import RunEvent

VERIFIER_CONTEXT_MESSAGES = 8

Message = tuple[str, str]  # (source, content)


@dataclass(frozen=True)
class ApprovedCall:
    """A tool call a person approved whose result is not recorded yet."""

    action_id: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    call_id: str
    decided_by: str
    started: bool  # its start was recorded: it may have run before the process stopped


@dataclass(frozen=True)
class HeardReply:
    """A person's reply in the run's thread, kept for the team (`human_reply`)."""

    seq: int
    user_id: str
    text: str


@dataclass(frozen=True)
class Baseline:
    """The run's totals when a reply last continued it after it had finished: its limits
    (MAX_TURNS, RUN_TIMEOUT_S, RUN_TOKEN_BUDGET) count from here."""

    turns: int = 0
    active_s: float = 0.0
    tokens: int = 0


@dataclass(frozen=True)
class SpokenMessage:
    seq: int
    message: Message
    ends_team: bool


class RunLog:
    def __init__(self, events: list[RunEvent]) -> None:
        self._messages = [
            SpokenMessage(
                e.seq,
                (
                    e.payload.get("source", "?"),
                    judged_text(e.payload.get("content", ""), e.payload.get("tool_calls")),
                ),
                bool(e.payload.get("ends_team")),
            )
            for e in events
            if e.kind == ev.AGENT_MESSAGE
        ]
        self._judged = {e.payload.get("agent_seq") for e in events if e.kind == ev.VERIFIER_RESULT}
        last_spoken = self._messages[-1].seq if self._messages else 0
        self._arrived = [
            str(e.payload.get("provider"))
            for e in events
            if e.kind == ev.CREDENTIAL_RECEIVED and e.seq > last_spoken
        ]
        # An approved call counts only in the run's current stretch: a run that finished
        # (cancelled, say) before making it and was continued by a reply does not make it.
        finished = max((e.seq for e in events if e.kind == ev.FINISHED), default=0)
        self._approved = [
            e.payload
            for e in events
            if e.kind == ev.ACTION_RESULT
            and e.payload.get("type") == "approve_tool"
            and e.seq > finished
        ]
        self._started = {
            e.payload.get("action_id") for e in events if e.kind == ev.TOOL_CALL_STARTED
        }
        self._ran = {e.payload.get("action_id") for e in events if e.kind == ev.TOOL_RESULT}
        self.last_seq = events[-1].seq if events else 0
        # Replies the team was given: up to the last one a message, a decision or a
        # continuation names as heard.
        heard = max((int(e.payload.get("heard_through") or 0) for e in events), default=0)
        self._unheard = [
            HeardReply(e.seq, str(e.payload.get("user_id", "")), str(e.payload.get("text", "")))
            for e in events
            if e.kind == ev.HUMAN_REPLY and e.seq > heard
        ]
        continued = [e.payload for e in events if e.kind == ev.RUN_CONTINUED]
        self.baseline = (
            Baseline(
                int(continued[-1].get("turns") or 0),
                float(continued[-1].get("active_s") or 0.0),
                int(continued[-1].get("tokens") or 0),
            )
            if continued
            else Baseline()
        )

    def recent(self) -> list[Message]:
        """The last few agent messages: the verifier's view of the conversation."""
        return [m.message for m in self._messages[-VERIFIER_CONTEXT_MESSAGES:]]

    def team_ended(self) -> bool:
        """Whether the last recorded turn ended the team (by its condition or by itself)."""
        return bool(self._messages) and self._messages[-1].ends_team

    def unverified(self) -> tuple[int, Message] | None:
        """An agent message saved just before a crash, whose verdict was never written."""
        if not self._messages or self._messages[-1].seq in self._judged:
            return None
        return self._messages[-1].seq, self._messages[-1].message

    def unheard_replies(self) -> list[HeardReply]:
        """Replies in the thread no turn has been given yet (the team reads them next)."""
        return list(self._unheard)

    def credentials_since_last_message(self) -> list[str]:
        """Providers whose key arrived after the team last spoke (each named once)."""
        return list(dict.fromkeys(self._arrived))

    def approved_call(self) -> ApprovedCall | None:
        """The latest approved tool call, unless its result is recorded already."""
        if not self._approved or self._approved[-1].get("action_id") in self._ran:
            return None
        payload = self._approved[-1]
        call = payload.get("tool_call") or {}
        return ApprovedCall(
            action_id=str(payload.get("action_id")),
            agent=str(call.get("agent", "")),
            tool=str(call.get("tool", "")),
            arguments=dict(call.get("arguments") or {}),
            call_id=str(call.get("call_id", "")),
            decided_by=str(payload.get("decided_by", "")),
            started=payload.get("action_id") in self._started,
        )
