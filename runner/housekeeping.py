"""Periodic repairs any replica may run: resume runs whose replica died, end runs whose
credential request expired. Every change is a guarded compare-and-set, so replicas racing
on the same row do each repair once."""

from __future__ import annotations

from collections.abc import Collection

from runner.outcome import closing_events
from store import Store
from store import events as ev
from store.changes import Guard, RunChange
from store.events import NewEvent
from store.models import utcnow
from store.records import WAITING_STATUSES, RunStatus

MAX_RECOVERIES = 3


async def requeue_orphaned_runs(
    store: Store, *, running_here: Collection[str], lease_s: float
) -> None:
    """Runs marked running whose lease lapsed (their process died) go back to the queue and
    resume from their last saved turn; after MAX_RECOVERIES they are marked interrupted,
    so a run that kills its process cannot loop forever. Either way the dead replica's
    publishing claim on the run is freed, so what it had stored but not posted is posted
    now by whoever takes the run up, not when that claim lapses."""
    now = utcnow()
    for run in await store.runs.orphaned(now=now):
        if run.id in running_here:
            continue
        # Still running, still that owner's, lease still lapsed: a renewal in between wins.
        still_orphaned = Guard(
            statuses=frozenset({RunStatus.RUNNING}), held_by=run.lease_owner, lapsed_before=now
        )
        if run.recoveries >= MAX_RECOVERIES:
            text = (
                f"The run was interrupted {run.recoveries} times while running and "
                "was not resumed again."
            )
            taken = await store.runs.change(
                run.id,
                RunChange(status=RunStatus.INTERRUPTED, outcome=text),
                still_orphaned,
                closing_events(run, RunStatus.INTERRUPTED, text, error=("interrupted", text)),
            )
        else:
            where = "from its last saved turn" if run.team_state else "from the start"
            note = f"The app restarted during this run; resuming {where}."
            taken = await store.runs.change(
                run.id,
                RunChange(status=RunStatus.QUEUED, recoveries=run.recoveries + 1),
                still_orphaned,
                [NewEvent(ev.INFO, {"text": note})],
            )
        if taken is not None and run.lease_owner is not None:
            await store.outbox.take_over(run.id, dead_owner=run.lease_owner, lease_s=lease_s)


async def expire_credential_requests(store: Store, *, timeout_s: int) -> None:
    """A key that never came ends its run with a clear event instead of a silent wait."""
    for request in await store.requests.expired(now=utcnow()):
        run = await store.runs.get(request.run_id)
        if run is None:
            continue  # deleted with its run meanwhile
        text = (
            f"No {request.provider} key arrived within {timeout_s} s "
            "(CREDENTIAL_TIMEOUT_S); the run ended."
        )
        await store.requests.expire(
            request.id,
            run_id=run.id,
            guard=Guard.status_in(WAITING_STATUSES),
            change=RunChange(status=RunStatus.FAILED, outcome=text),
            events=closing_events(run, RunStatus.FAILED, text, error=("credential_timeout", text)),
        )
