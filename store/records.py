"""Plain, frozen records that repositories return, so callers never hold live ORM objects."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

R = TypeVar("R")


def record_of(record: type[R], row: object, **converted: Any) -> R:
    """A frozen record from an ORM row: each field read from the row's column of the same
    name, except those given already `converted` (an enum, a copied JSON object)."""
    names = [f.name for f in fields(record) if f.name not in converted]
    return record(**{name: getattr(row, name) for name in names}, **converted)


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_CREDENTIAL = "waiting_credential"
    WAITING_APPROVAL = "waiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATUSES


MAX_TASK_CHARS = 4000
"""Longest task a run takes; a front end says so before a longer one is cut."""

FINISHED_STATUSES = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED}
)
WAITING_STATUSES = frozenset({RunStatus.WAITING_CREDENTIAL, RunStatus.WAITING_APPROVAL})
# The lease owner of a new run while the Slack front end posts its root message.
FRONT_END_HOLD = "front-end"


@dataclass
class Totals:
    """A run's counters: turns taken and tokens spent (prompt and completion)."""

    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, prompt: int, completion: int) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


NO_CHANNEL = ""  # the channel of a run started from the web API: it has no place in Slack


@dataclass(frozen=True)
class Run:
    id: str
    workspace_id: str
    channel_id: str
    thread_ts: str | None
    requester_id: str
    task: str
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    turns: int
    prompt_tokens: int
    completion_tokens: int
    team_state: str | None
    resume_input: str | None
    outcome: str | None
    cancelled_by: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    recoveries: int
    active_s: float = 0.0
    team_name: str | None = None  # a team of TEAMS_DIR; None: the default team
    root_ts: str | None = None  # the root message when it is a reply (an @mention's run)

    @property
    def root_message_ts(self) -> str | None:
        """The message that shows the run's status: the thread's parent, or its own."""
        return self.root_ts or self.thread_ts

    @property
    def totals(self) -> Totals:
        """A fresh, mutable copy of the run's counters."""
        return Totals(self.turns, self.prompt_tokens, self.completion_tokens)

    def awaiting_front_end(self, now: datetime) -> bool:
        """Still inside the front end's hold: it is posting the run's root message."""
        return (
            self.lease_owner == FRONT_END_HOLD
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )


@dataclass(frozen=True)
class RunEvent:
    id: int
    run_id: str
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown about a stored credential: never its value."""

    workspace_id: str
    user_id: str
    provider: str
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None


class RequestStatus(StrEnum):
    PENDING = "pending"
    FULFILLED = "fulfilled"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class CredentialRequest:
    id: str
    run_id: str
    workspace_id: str
    user_id: str
    provider: str
    reason: str
    status: RequestStatus
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None


class ActionStatus(StrEnum):
    OFFERED = "offered"
    APPROVED = "approved"
    APPLIED = "applied"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class OfferedAction:
    id: str
    offer_id: str
    run_id: str
    type: str
    label: str
    params: dict[str, Any]
    status: ActionStatus
    decided_by: str | None
    decided_at: datetime | None
