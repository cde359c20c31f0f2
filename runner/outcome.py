"""How a run's numbers are counted and how its end is written (error + finished events)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner import events as ev
from store.models import utcnow
from store.records import Run, RunStatus


@dataclass
class Totals:
    turns: int
    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def of(cls, run: Run) -> Totals:
        return cls(run.turns, run.prompt_tokens, run.completion_tokens)

    def add(self, prompt: int, completion: int) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def columns(self) -> dict[str, int]:
        return {
            "turns": self.turns,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


def closing_events(
    run: Run,
    status: RunStatus,
    outcome: str,
    *,
    totals: Totals | None = None,
    error: tuple[str, str] | None = None,
    cancelled_by: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """An `error` event (code, text) when there is one, then the `finished` summary."""
    totals = totals or Totals.of(run)
    started = run.started_at or run.created_at
    events: list[tuple[str, dict[str, Any]]] = []
    if error is not None:
        events.append((ev.ERROR, {"code": error[0], "text": error[1]}))
    events.append(
        (
            ev.FINISHED,
            {
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
