"""What an approved action does to its run: revise, continue, stop, request_credential,
and the two answers to a held tool call, approve_tool and deny_tool.

Deciding (who may, only once) is the store's job; this module applies the decision: the
run's change, the `action_result` event, any key request it opens and the action marked
applied commit in one unit of work, guarded on the run still waiting for approval, so an
action on a run that moved on (cancelled, say) changes nothing and applying twice is safe.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from runner.outcome import closing_events
from runner.resume import person_input, revise_input
from runner.routing import with_next_speaker
from runner.tool_calls import shorten_arguments
from store import Store
from store import events as ev
from store.actions import DecisionOutcome
from store.changes import KEEP, Guard, RunChange
from store.events import NewEvent
from store.key_requests import KeyWanted
from store.models import utcnow
from store.records import OfferedAction, Run, RunStatus
from store.settings import Settings

AUTO = "auto"  # who decided an AUTO_APPLY action
STOPPED_ON_ADVICE = "Stopped on the verifier's advice."
STILL_AWAITING_DECISION = Guard.status_in([RunStatus.WAITING_APPROVAL])
TOOL_DECISIONS = ("approve_tool", "deny_tool")


class ActionApplier:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._applying: set[str] = set()

    def applying(self, action_id: str) -> bool:
        """Whether this process is applying the action right now: such an action is not
        "approved but unapplied", and recovery must leave it alone."""
        return action_id in self._applying

    async def auto_apply(self, action: OfferedAction) -> None:
        """Apply an AUTO_APPLY action: decided by "auto" through the same single-use gate."""
        self._applying.add(action.id)
        try:
            decided = await self._store.actions.decide(
                action.id, user_id=AUTO, approvers=frozenset({AUTO})
            )
            if decided.outcome == DecisionOutcome.APPROVED and decided.action is not None:
                await self._apply(decided.action, decided_by=AUTO)
        finally:
            self._applying.discard(action.id)

    async def apply(self, action: OfferedAction, *, decided_by: str) -> None:
        """Carry out an approved action (a person's click, or recovery of one whose process
        died before applying it)."""
        self._applying.add(action.id)
        try:
            await self._apply(action, decided_by=decided_by)
        finally:
            self._applying.discard(action.id)

    async def _apply(self, action: OfferedAction, *, decided_by: str) -> None:
        run = await self._store.runs.get(action.run_id)
        if run is None:
            return
        if await self._store.actions.has_newer_offer(run.id, action.offer_id):
            # Decided long ago and never applied (the process died in between); the run has
            # asked again since, and the newer buttons are what counts now.
            async with self._store.work() as work:
                await self._store.actions.mark_applied_in(work, action.id)
            return
        about_call = action.type in TOOL_DECISIONS
        result = NewEvent(
            ev.ACTION_RESULT,
            {
                "action_id": action.id,
                "offer_id": action.offer_id,
                "type": action.type,
                "label": action.label,
                "decided_by": decided_by,
                "auto": decided_by == AUTO,
                **({"tool_call": _call_of(action)} if about_call else {}),
                **({"note": str(action.params["note"])} if action.params.get("note") else {}),
                **(
                    {"heard_through": int(action.params["heard_through"])}
                    if action.params.get("heard_through")
                    else {}
                ),
            },
        )
        change, events = self._effect(run, action)
        async with self._store.work() as work:
            written = await work.write(run.id, change, STILL_AWAITING_DECISION, [result, *events])
            if written is not None and action.type == "request_credential":
                await self._store.requests.open_in(
                    work,
                    run,
                    self._wanted(action),
                    expires_at=utcnow() + timedelta(seconds=self._settings.credential_timeout_s),
                )
            await self._store.actions.mark_applied_in(work, action.id)

    def _effect(self, run: Run, action: OfferedAction) -> tuple[RunChange, list[NewEvent]]:
        """The run's change (and any closing events) for each type of action."""
        note = str(action.params.get("note") or "").strip()  # a person's reply in the thread
        if action.type == "revise":
            feedback = str(action.params.get("feedback") or "").strip()
            agent = str(action.params.get("agent") or "").strip()
            said = person_input(note, agent, action.decided_by or "") if note else None
            change = RunChange(
                status=RunStatus.QUEUED,
                team_state=with_next_speaker(run.team_state, agent),
                resume_input=said or revise_input(feedback, agent),
            )
            return change, []
        if action.type == "continue" and note:  # no revise offered: the reply is the feedback
            agent = str(action.params.get("agent") or "").strip()
            change = RunChange(
                status=RunStatus.QUEUED,
                team_state=with_next_speaker(run.team_state, agent),
                resume_input=person_input(note, agent, action.decided_by or ""),
            )
            return change, []
        if action.type == "stop":
            change = RunChange(status=RunStatus.COMPLETED, outcome=STOPPED_ON_ADVICE)
            return change, closing_events(run, RunStatus.COMPLETED, STOPPED_ON_ADVICE)
        if action.type == "request_credential":
            return RunChange(status=RunStatus.WAITING_CREDENTIAL), []
        if action.type in TOOL_DECISIONS:
            # The call's agent speaks next: told the result (the runner makes the approved
            # call on the next claim) or who denied it and why.
            call = _call_of(action)
            denied = action.type == "deny_tool"
            change = RunChange(
                status=RunStatus.QUEUED,
                team_state=with_next_speaker(run.team_state, str(call.get("agent") or "")),
                resume_input=denied_input(call, action) if denied else KEEP,
            )
            return change, []
        return RunChange(status=RunStatus.QUEUED), []  # continue

    def _wanted(self, action: OfferedAction) -> KeyWanted:
        provider = str(action.params.get("provider") or self._settings.llm_provider)
        provider = provider.strip().lower()[:64] or self._settings.llm_provider
        reason = str(action.params.get("reason") or "The verifier suggested it.")
        return KeyWanted(provider, reason)


def _call_of(action: OfferedAction) -> dict[str, Any]:
    keys = ("agent", "tool", "arguments", "call_id")
    return {key: action.params.get(key) for key in keys}


def denied_input(call: dict[str, Any], action: OfferedAction) -> str:
    """What the agent is told when a person denies its call: who, and why."""
    arguments = call.get("arguments") if isinstance(call.get("arguments"), dict) else {}
    note = str(action.params.get("note") or "").strip()
    why = f' Their reason: "{note}"' if note else " They gave no reason."
    return (
        f"A person ({action.decided_by}) denied your call {call.get('tool')}"
        f"({shorten_arguments(arguments)}).{why} Do not make that call again; go on without "
        "it, or say what you would need instead."
    )
