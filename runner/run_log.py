"""What a run has said so far, read once from its events when it is claimed.

The store is the memory: a claimed run rebuilds its verifier context from here, learns
whether its team had already ended, finds a message saved just before a crash whose verdict
was never written, and sees which credentials arrived since its last message.
"""

from __future__ import annotations

from dataclasses import dataclass

from store import events as ev
from store.records import RunEvent

VERIFIER_CONTEXT_MESSAGES = 8

Message = tuple[str, str]  # (source, content)


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
                (e.payload.get("source", "?"), e.payload.get("content", "")),
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

    def credentials_since_last_message(self) -> list[str]:
        """Providers whose key arrived after the team last spoke (each named once)."""
        return list(dict.fromkeys(self._arrived))
