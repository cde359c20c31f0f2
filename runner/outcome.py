"""How a run's end is written: an `error` event when there is one, then `finished`."""

from __future__ import annotations

from store import events as ev
from store.events import NewEvent
from store.models import utcnow
from store.records import Run, RunStatus, Totals


def closing_events(
    run: Run,
    status: RunStatus,
    outcome: str,
    *,
    totals: Totals | None = None,
    error: tuple[str, str] | None = None,
    cancelled_by: str | None = None,
) -> list[NewEvent]:
    """An `error` event (code, text) when there is one, then the `finished` summary."""
    totals = totals or run.totals
    started = run.started_at or run.created_at
    events: list[NewEvent] = []
    if error is not None:
        events.append(NewEvent(ev.ERROR, {"code": error[0], "text": error[1]}))
    events.append(
        NewEvent(
            ev.FINISHED,
            {
                "run_id": run.id,
                "status": str(status),
                "outcome": outcome,
                "turns": totals.turns,
                "prompt_tokens": totals.prompt_tokens,
                "completion_tokens": totals.completion_tokens,
                "duration_s": round((utcnow() - started).total_seconds(), 1),
                "working_s": round(run.active_s, 1),  # without the waits for people
                "cancelled_by": cancelled_by,
            },
        )
    )
    return events
