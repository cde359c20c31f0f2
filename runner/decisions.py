"""What an approved action does to its run: revise, continue, stop, request_credential.

Deciding (who may, only once) is the store's job; this module applies the decision."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from runner import events as ev
from runner.outcome import closing_events
from runner.routing import with_next_speaker
from runner.tools import resume_note
from store import Store
from store.actions import DecisionOutcome
from store.models import utcnow
from store.records import OfferedAction, RunStatus
from store.settings import Settings


def revise_input(feedback: str, agent: str) -> str:
    """The message the team resumes with after an approved "revise"."""
    if not agent:
        return (
            f"Feedback from the verifier, approved by a person: {feedback}\n"
            "Please revise your last answer accordingly."
        )
    return (
        f"Feedback from the verifier on {agent}'s last message, approved by a person: "
        f"{feedback}\n{agent}, please revise your answer accordingly."
    )


class ActionApplier:
    def __init__(self, store: Store, settings: Settings, wake: Callable[[], None]) -> None:
        self._store = store
        self._settings = settings
        self._wake = wake

    async def auto_apply(self, action: OfferedAction) -> None:
        """Apply an AUTO_APPLY action: decided by "auto" through the same single-use gate."""
        decided = await self._store.actions.decide(
            action.id, user_id="auto", approvers=frozenset({"auto"})
        )
        if decided.outcome == DecisionOutcome.APPROVED and decided.action is not None:
            await self.apply(decided.action, decided_by="auto", auto=True)

    async def apply(self, action: OfferedAction, *, decided_by: str, auto: bool) -> None:
        """Carry out an approved action; each status change is guarded, so an action on a
        run that moved on (cancelled, say) changes nothing."""
        run = await self._store.runs.get(action.run_id)
        if run is None:
            return
        if await self._store.actions.has_newer_offer(run.id, action.offer_id):
            # Decided long ago and never applied (the process died in between); the run has
            # asked again since, and the newer buttons are what counts now.
            await self._store.actions.mark_applied(action.id)
            return
        result_event = (
            ev.ACTION_RESULT,
            {
                "action_id": action.id,
                "offer_id": action.offer_id,
                "type": action.type,
                "label": action.label,
                "decided_by": decided_by,
                "auto": auto,
            },
        )
        waiting = [RunStatus.WAITING_APPROVAL]
        if action.type == "revise":
            feedback = str(action.params.get("feedback") or "").strip()
            agent = str(action.params.get("agent") or "").strip()
            await self._store.runs.transition(
                run.id,
                expected=waiting,
                status=RunStatus.QUEUED,
                events=[result_event],
                team_state=with_next_speaker(run.team_state, agent),
                resume_input=revise_input(feedback, agent),
            )
        elif action.type == "continue":
            await self._store.runs.transition(
                run.id,
                expected=waiting,
                status=RunStatus.QUEUED,
                events=[result_event],
                resume_input=None,
            )
        elif action.type == "stop":
            outcome = "Stopped on the verifier's advice."
            await self._store.runs.transition(
                run.id,
                expected=waiting,
                status=RunStatus.COMPLETED,
                outcome=outcome,
                events=[result_event, *closing_events(run, RunStatus.COMPLETED, outcome)],
            )
        elif action.type == "request_credential":
            provider = str(action.params.get("provider") or self._settings.llm_provider)
            provider = provider.strip().lower()[:64] or self._settings.llm_provider
            await self._store.credentials.request_and_wait(
                events_before=[result_event],
                run_id=run.id,
                held_by=None,
                expected=waiting,
                workspace_id=run.workspace_id,
                user_id=run.requester_id,
                provider=provider,
                reason=str(action.params.get("reason") or "The verifier suggested it."),
                expires_at=utcnow() + timedelta(seconds=self._settings.credential_timeout_s),
                event_payload={"rejected": False},
                status=RunStatus.WAITING_CREDENTIAL,
                resume_input=resume_note(provider),
            )
        await self._store.actions.mark_applied(action.id)
        self._wake()
