"""Every change a replica makes to a run it has claimed, each conditional on still holding it.

A cancel, a takeover by another replica or an expiry changes the row; the next write here
then matches nothing and raises `RunLost`, so the turn loop stops quietly at once."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from runner.outcome import closing_events
from runner.redact import redact_tree
from runner.tool_calls import PendingApproval
from runner.verifier import VerifierResult, default_label
from store import Store
from store.actions import ActionSpec
from store.changes import KEEP, NO_CHANGE, Guard, Keep, RunChange
from store.events import INFO, NewEvent
from store.key_requests import KeyWanted
from store.models import utcnow
from store.records import OfferedAction, Run, RunEvent, RunStatus
from store.settings import Settings

log = logging.getLogger(__name__)

RESTARTING = "The app is restarting; this run continues shortly."


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
            specs.append(ActionSpec(fallback, default_label(fallback), {}))
    # A reply in the thread may answer by "continue": the judged agent then speaks next.
    return [
        ActionSpec(s.type, s.label, {"agent": judged_agent, **s.params})
        if s.type == "continue"
        else s
        for s in specs
    ]


class ClaimedRunWriter:
    """`progress` arguments carry the claim's running totals and working time
    (`ClaimedRun.progress()`), written with whatever else changes."""

    def __init__(self, store: Store, settings: Settings, owner: str) -> None:
        self._store = store
        self._settings = settings
        self._guard = Guard.running_on(owner)

    async def record(
        self, run: Run, events: list[NewEvent], change: RunChange = NO_CHANGE
    ) -> list[RunEvent]:
        """Append events and change columns while this replica holds the running run."""
        written = await self._store.runs.change(run.id, change, self._guard, events)
        if written is None:
            raise RunLost()
        return written.events

    async def finish(
        self,
        run: Run,
        status: RunStatus,
        outcome: str,
        *,
        progress: RunChange = NO_CHANGE,
        error: tuple[str, str] | None = None,
    ) -> None:
        change = dataclasses.replace(progress, status=status, outcome=outcome)
        now = dataclasses.replace(run, active_s=progress.active_s or run.active_s)
        events = closing_events(now, status, outcome, totals=progress.totals, error=error)
        await self.record(run, events, change)
        totals = progress.totals or run.totals
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
        wanted: KeyWanted,
        *,
        pending_input: str | None | Keep = KEEP,
        progress: RunChange = NO_CHANGE,
        notes: list[NewEvent] | None = None,
    ) -> None:
        """Park the run on a credential request: from here it is only rows. `pending_input`
        is an input the team has not been given yet (the cut-short turn's); `notes` are
        events written just before the request, in the same transaction."""
        change = dataclasses.replace(
            progress, status=RunStatus.WAITING_CREDENTIAL, resume_input=pending_input
        )
        request = await self._store.requests.request(
            run,
            wanted,
            expires_at=utcnow() + timedelta(seconds=self._settings.credential_timeout_s),
            guard=self._guard,
            change=change,
            events_before=notes,
        )
        if request is None:
            raise RunLost()
        log.info(
            "run waits for the %s key of %s",
            wanted.provider,
            run.requester_id,
            extra={"run_id": run.id},
        )

    async def wait_for_approval(
        self, run: Run, verdict: VerifierResult, *, judged_agent: str, progress: RunChange
    ) -> list[OfferedAction]:
        """Park the run on the verifier's suggestions; returns the offered actions."""
        offered = await self._store.actions.offer(
            run.id,
            offered_specs(verdict, judged_agent),
            reason=verdict.reason,
            guard=self._guard,
            change=dataclasses.replace(progress, status=RunStatus.WAITING_APPROVAL),
        )
        if offered is None:
            raise RunLost()
        log.info("run waits for a decision (%s)", verdict.verdict, extra={"run_id": run.id})
        return offered[1]

    async def wait_for_tool_approval(
        self, run: Run, approval: PendingApproval, *, progress: RunChange
    ) -> None:
        """Park the run on a held tool call: Approve and Deny, both bound to exactly this
        call (tool, arguments, agent) of this run, each usable once."""
        call = redact_tree(approval.params())
        specs = [ActionSpec("approve_tool", "Approve", call), ActionSpec("deny_tool", "Deny", call)]
        offered = await self._store.actions.offer(
            run.id,
            specs,
            reason=f"{approval.agent} wants to run {approval.tool}.",
            guard=self._guard,
            change=dataclasses.replace(progress, status=RunStatus.WAITING_APPROVAL),
            extra={"tool_call": call},
        )
        if offered is None:
            raise RunLost()
        log.info("run waits for approval of %s", approval.tool, extra={"run_id": run.id})

    async def release(self, run: Run, pending_input: str | None) -> None:
        """Shutting down: hand the run back to the queue from its saved state."""
        await self._store.runs.change(
            run.id,
            RunChange(status=RunStatus.QUEUED, resume_input=pending_input),
            self._guard,
            [NewEvent(INFO, {"text": RESTARTING})],
        )
