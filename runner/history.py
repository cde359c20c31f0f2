"""What a run has said so far, read back from its events (the store is the memory).

A claimed run rebuilds its verifier context, learns whether its team had already ended, and
finds a message saved just before a crash whose verdict was never written."""

from __future__ import annotations

from runner import events as ev
from store import Store
from store.records import Run, RunEvent

VERIFIER_CONTEXT_MESSAGES = 8

Message = tuple[str, str]  # (source, content)


def _as_message(event: RunEvent) -> Message:
    return event.payload.get("source", "?"), event.payload.get("content", "")


async def _agent_messages(store: Store, run: Run) -> list[RunEvent]:
    if run.turns == 0:
        return []
    return [e for e in await store.runs.events(run.id) if e.kind == ev.AGENT_MESSAGE]


async def recent_messages(store: Store, run: Run) -> list[Message]:
    """The last few agent messages: the verifier's view of the conversation."""
    messages = await _agent_messages(store, run)
    return [_as_message(e) for e in messages][-VERIFIER_CONTEXT_MESSAGES:]


async def team_ended(store: Store, run: Run) -> bool:
    """Whether the last recorded turn ended the team (by its condition or by itself)."""
    messages = await _agent_messages(store, run)
    return bool(messages and messages[-1].payload.get("ends_team"))


async def unverified_message(store: Store, run: Run) -> tuple[int, Message] | None:
    """An agent message saved just before a crash, whose verdict was never written."""
    if run.turns == 0:
        return None
    events = await store.runs.events(run.id)
    judged = {e.payload.get("agent_seq") for e in events if e.kind == ev.VERIFIER_RESULT}
    messages = [e for e in events if e.kind == ev.AGENT_MESSAGE]
    if not messages or messages[-1].seq in judged:
        return None
    return messages[-1].seq, _as_message(messages[-1])
