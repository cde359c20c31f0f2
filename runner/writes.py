"""Every change a replica makes to a run it has claimed, each conditional on still holding it.

A cancel, a takeover by another replica or an expiry changes the row; the next write here
then matches nothing and raises `RunLost`, so the turn loop stops quietly at once."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from runner import events as ev
from runner.outcome import Totals, closing_events
from runner.verifier import VerifierResult
from store import Store
from store.actions import ActionSpec
from store.models import utcnow
from store.records import OfferedAction, Run, RunEvent, RunStatus
from store.settings import Settings

log = logging.getLogger(__name__)

RUNNING = [RunStatus.RUNNING]
FALLBACK_LABELS = {"continue": "Continue anyway", "stop": "Stop the run"}


class RunLost(Exception):
    """This replica no longer holds the run (cancelled or taken over); stop quietly."""


def offered_specs(verdict: VerifierResult, judged_agent: str) -> list[ActionSpec]:
    """The verifier's suggestions as offers; "continue" and "stop" are always among them,
    so a person is never left without a way forward. A "revise" carries the feedback and
    the agent it is for."""
    specs = [
        ActionSpec(
            a["type"],
            a["label"],
            {"feedback": verdict.reason, **a["params"], "agent": judged_agent}
            if a["type"] == "revise"
            else a["params"],
        )
        for a in verdict.suggested_actions
    ]
    for fallback in ("continue", "stop"):
        if not any(spec.type == fallback for spec in specs):
            specs.append(ActionSpec(fallback, FALLBACK_LABELS[fallback], {}))
    return specs


class ClaimedRunWriter:
    def __init__(self, store: Store, settings: Settings, owner: str) -> None:
        self._store = store
        self._settings = settings
        self._owner = owner

    async def write(
        self, run: Run, events: list[tuple[str, dict[str, Any]]], **changes: Any
    ) -> list[RunEvent]:
        """Append events and change columns while this replica holds the running run."""
        result = await self._store.runs.transition(
            run.id, expected=RUNNING, held_by=self._owner, events=events, **changes
        )
        if result is False:
            raise RunLost()
        return result if isinstance(result, list) else []

    async def finish(
        self,
        run: Run,
        status: RunStatus,
        outcome: str,
        *,
        totals: Totals | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        current = await self._store.runs.get(run.id)
        if current is None:
            return
        totals = totals or Totals.of(current)
        events = closing_events(current, status, outcome, totals=totals, error=error)
        result = await self._store.runs.transition(
            run.id,
            expected=RUNNING,
            held_by=self._owner,
            events=events,
            status=status,
            outcome=outcome,
            **totals.columns(),
        )
        if result is False:
            raise RunLost()
        log.info(
            "run %s after %d turns, %d tokens",
            status,
            totals.turns,
            totals.tokens,
            extra={"run_id": run.id},
        )

    async def wait_for_credential(
        self,
        run: Run,
        *,
        provider: str,
        reason: str,
        resume_input: str | None,
        rejected: bool = False,
    ) -> None:
        """Park the run on a credential request: from here it is only rows."""
        request = await self._store.credentials.request_and_wait(
            run_id=run.id,
            held_by=self._owner,
            workspace_id=run.workspace_id,
            user_id=run.requester_id,
            provider=provider,
            reason=reason,
            expires_at=utcnow() + timedelta(seconds=self._settings.credential_timeout_s),
            event_payload={"rejected": rejected},
            expected=RUNNING,
            status=RunStatus.WAITING_CREDENTIAL,
            resume_input=resume_input,
            lease_owner=None,
            lease_expires_at=None,
        )
        if request is None:
            raise RunLost()
        log.info(
            "run waits for the %s key of %s", provider, run.requester_id, extra={"run_id": run.id}
        )

    async def wait_for_approval(
        self, run: Run, verdict: VerifierResult, totals: Totals, *, judged_agent: str
    ) -> list[OfferedAction]:
        """Park the run on the verifier's suggestions; returns the offered actions."""
        offered = await self._store.actions.offer(
            run_id=run.id,
            specs=offered_specs(verdict, judged_agent),
            event_payload={"reason": verdict.reason},
            expected=RUNNING,
            held_by=self._owner,
            status=RunStatus.WAITING_APPROVAL,
            lease_owner=None,
            lease_expires_at=None,
            **totals.columns(),
        )
        if offered is None:
            raise RunLost()
        log.info("run waits for a decision (%s)", verdict.verdict, extra={"run_id": run.id})
        return offered[1]

    async def release(self, run: Run, next_input: str | None) -> None:
        """Shutting down: hand the run back to the queue from its saved state."""
        await self._store.runs.transition(
            run.id,
            expected=RUNNING,
            held_by=self._owner,
            status=RunStatus.QUEUED,
            lease_owner=None,
            lease_expires_at=None,
            resume_input=next_input,
            events=[(ev.INFO, {"text": "The app is restarting; this run continues shortly."})],
        )
