"""The state of one run while this replica drives it: built at claim, dropped when it parks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from runner.run_log import Message, RunLog
from runner.team import LoadedTeam
from runner.toolkit import Toolkit
from store.changes import RunChange
from store.models import utcnow
from store.records import Run, Totals


@dataclass
class ClaimedRun:
    """What the executor's steps share: the run as claimed, its key, its team and tools,
    what it has said (read once from its log), and its running totals."""

    run: Run
    key: str
    loaded: LoadedTeam
    log: RunLog
    timeout_s: float
    toolkit: Toolkit
    claimed_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        self.totals: Totals = self.run.totals
        self.history: list[Message] = self.log.recent()

    def active_s(self) -> float:
        """Seconds the run has spent running, over all its claims (waits do not count)."""
        return self.run.active_s + (utcnow() - self.claimed_at).total_seconds()

    def seconds_left(self) -> float:
        return self.timeout_s - self.active_s()

    def progress(self) -> RunChange:
        """The totals and working time so far, to be written with the next change."""
        return RunChange(totals=dataclasses.replace(self.totals), active_s=self.active_s())
