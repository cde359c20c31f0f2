"""Typed descriptions of a run write: what must still hold (`Guard`) and what changes
(`RunChange`). The unit of work (`store.work`) turns them into one compare-and-set."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final

from store.records import FINISHED_STATUSES, RunStatus, Totals


class Keep(Enum):
    """The type of `KEEP`."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
"""A column the change leaves as it is (for columns where None is a value: it clears)."""


@dataclass(frozen=True)
class Lease:
    """Which replica drives a running run, until when (renewed while it runs)."""

    owner: str
    expires_at: datetime


@dataclass(frozen=True)
class Guard:
    """What the run must still be for the write to happen; the default matches any run.

    `statuses`: one of these; `held_by`: its lease (or front-end hold) is this owner's;
    `lapsed_before`: that lease had expired by then (a takeover must not take a run whose
    owner renewed a moment ago)."""

    statuses: frozenset[RunStatus] | None = None
    held_by: str | None = None
    lapsed_before: datetime | None = None

    @classmethod
    def status_in(cls, statuses: Iterable[RunStatus]) -> Guard:
        return cls(statuses=frozenset(statuses))

    @classmethod
    def running_on(cls, owner: str) -> Guard:
        """The run is running and this replica holds it: every write of a claimed run."""
        return cls(statuses=frozenset({RunStatus.RUNNING}), held_by=owner)

    @classmethod
    def unfinished(cls) -> Guard:
        return cls(statuses=frozenset(s for s in RunStatus if s not in FINISHED_STATUSES))


ANY_RUN: Final = Guard()


@dataclass(frozen=True)
class RunChange:
    """Columns a write sets; fields left at their default are not touched.

    The lease follows the status (the unit of work applies the rule): entering `running`
    needs a `lease`; any other status releases it; a finished status stamps `finished_at`.
    """

    status: RunStatus | None = None
    lease: Lease | None = None
    team_state: str | None = None
    resume_input: str | None | Keep = KEEP
    outcome: str | None = None
    cancelled_by: str | None = None
    totals: Totals | None = None
    active_s: float | None = None
    recoveries: int | None = None


NO_CHANGE: Final = RunChange()
