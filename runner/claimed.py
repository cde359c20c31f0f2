"""The state of one run while this replica drives it: built at claim, dropped when it parks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from runner.run_log import Baseline, HeardReply, Message, RunLog
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
        self.baseline: Baseline = self.log.baseline
        # Replies in the thread: events up to `replies_after` were looked at; those the
        # team has not read yet go with its next turn (their last seq recorded with it).
        self.replies_after = self.log.last_seq
        self.pending_replies: list[HeardReply] = self.log.unheard_replies()

    def active_s(self) -> float:
        """Seconds the run has spent running, over all its claims (waits do not count)."""
        return self.run.active_s + (utcnow() - self.claimed_at).total_seconds()

    def seconds_left(self) -> float:
        """RUN_TIMEOUT_S less the time spent since the run started (or was continued)."""
        return self.timeout_s - (self.active_s() - self.baseline.active_s)

    def turns_taken(self) -> int:
        """Turns since the run started (or a reply continued it), for MAX_TURNS."""
        return self.totals.turns - self.baseline.turns

    def tokens_used(self) -> int:
        """Tokens since the run started (or a reply continued it), for RUN_TOKEN_BUDGET."""
        return self.totals.tokens - self.baseline.tokens

    def progress(self) -> RunChange:
        """The totals and working time so far, to be written with the next change."""
        return RunChange(totals=dataclasses.replace(self.totals), active_s=self.active_s())
