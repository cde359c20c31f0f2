"""The one write path for runs: a unit of work that changes a run if it is still as expected,
appends its events, and tells listeners after the commit.

Every writer (the run lifecycle, credential requests, offered actions) opens a `RunWork`;
each repository adds its own rows through the same session, so a run change, its events
and the rows they describe commit together or not at all. The unit of work owns what
every writer would otherwise repeat: the compare-and-set, the event sequence, the lease
rules and the notifications. Hooks let a repository keep its own table in step:
`on_finish` (a finished run's open waits close) and `on_append` (the outbox learns there is
something to deliver).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Update, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.changes import ANY_RUN, KEEP, NO_CHANGE, Guard, RunChange
from store.events import NewEvent
from store.models import AuditRow, RunEventRow, RunRow, utcnow
from store.records import FINISHED_STATUSES, Run, RunEvent, RunStatus, record_of
from store.wakeups import EVENT, RUN_READY, new_origin, send
from store.writers import WriterQueue

log = logging.getLogger(__name__)

Listener = Callable[[str, str], None]
"""Called after a commit with (topic, run_id); topics are `event` and `run_ready`."""

FinishHook = Callable[[AsyncSession, str], Awaitable[None]]
AppendHook = Callable[[AsyncSession, Run, int], Awaitable[None]]


_ID = re.compile(r"[0-9a-f]{16}")


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def looks_like_id(value: str) -> bool:
    """Whether `value` has the shape of an id `new_id` makes: anything else (a button
    value or modal metadata someone altered) can be answered "not found" at once."""
    return _ID.fullmatch(value) is not None


def to_run(row: RunRow) -> Run:
    return record_of(Run, row, status=RunStatus(row.status), active_s=row.active_s or 0.0)


def to_event(row: RunEventRow) -> RunEvent:
    return record_of(RunEvent, row, payload=dict(row.payload))


@dataclass(frozen=True)
class Written:
    """A write that happened: the run as it now is, and the events it appended."""

    run: Run
    events: list[RunEvent] = field(default_factory=list)


# RunChange fields set as they are when given (None: not touched).
_PLAIN_COLUMNS = ("team_state", "outcome", "cancelled_by", "active_s", "recoveries")


def _columns(change: RunChange) -> dict[str, Any]:
    """The SET clause of a change, with the lease rules applied."""
    now = utcnow()
    values: dict[str, Any] = {"updated_at": now}
    if change.status is not None:
        values["status"] = change.status
        if change.status == RunStatus.RUNNING:
            if change.lease is None:
                raise ValueError("a run enters running only with a lease")
            values["started_at"] = func.coalesce(RunRow.started_at, now)
        else:
            values["lease_owner"] = None
            values["lease_expires_at"] = None
        if change.status in FINISHED_STATUSES:
            values["finished_at"] = now
        else:  # a finished run continued by a reply is no longer finished
            values["finished_at"] = None
    if change.lease is not None:
        values["lease_owner"] = change.lease.owner
        values["lease_expires_at"] = change.lease.expires_at
    for column in _PLAIN_COLUMNS:
        value = getattr(change, column)
        if value is not None:
            values[column] = value
    if change.resume_input is not KEEP:
        values["resume_input"] = change.resume_input
    if change.totals is not None:
        values["turns"] = change.totals.turns
        values["prompt_tokens"] = change.totals.prompt_tokens
        values["completion_tokens"] = change.totals.completion_tokens
    return values


def _guarded(query: Update, guard: Guard) -> Update:
    if guard.statuses is not None:
        query = query.where(RunRow.status.in_([str(s) for s in guard.statuses]))
    if guard.held_by is not None:
        query = query.where(RunRow.lease_owner == guard.held_by)
    if guard.lapsed_before is not None:
        lapsed = RunRow.lease_expires_at < guard.lapsed_before
        query = query.where(or_(RunRow.lease_expires_at.is_(None), lapsed))
    return query


class RunWork:
    """One transaction's writes to runs and their events. Open it with `Database.work()`."""

    def __init__(
        self,
        session: AsyncSession,
        on_finish: Sequence[FinishHook],
        on_append: Sequence[AppendHook],
    ) -> None:
        self.session = session
        self._on_finish = on_finish
        self._on_append = on_append
        self.appended_to: set[str] = set()
        self.ready: set[str] = set()

    async def lock(self, run_id: str) -> None:
        """Take the run row's lock now. Every writer changes the run before the rows that
        hang off it (the finish hooks come after the run); a unit of work that must touch
        such a row first (a key request) locks the run before, so two never wait on each
        other in opposite orders (a deadlock on PostgreSQL; SQLite serialises writers)."""
        # FOR NO KEY UPDATE, as an UPDATE of the row takes: a plain FOR UPDATE would also
        # block inserts that reference the run (outbox rows, events) and deadlock with them.
        await self.session.execute(
            select(RunRow.id).where(RunRow.id == run_id).with_for_update(key_share=True)
        )
        # A claim meanwhile (SKIP LOCKED, on PostgreSQL) passes over a queued run locked
        # here: tell the schedulers to look again once this commits.
        self.ready.add(run_id)

    async def change(self, run_id: str, change: RunChange, guard: Guard = ANY_RUN) -> Run | None:
        """Apply `change` if the run is as `guard` says; the run after it, or None (nothing
        written) when it is not: a compare-and-set that replicas can race on safely."""
        written = await self.write(run_id, change, guard)
        return written.run if written is not None else None

    async def write(
        self, run_id: str, change: RunChange, guard: Guard, events: Sequence[NewEvent] = ()
    ) -> Written | None:
        """`change` and `events` in one statement on the run (the compare-and-set also takes
        the events' sequence numbers: the row lock serialises writers, so two replicas
        appending to one run never share a number), then the events; None when the guard
        did not hold."""
        values = _columns(change)
        if events:
            values["last_seq"] = RunRow.last_seq + len(events)
        row = await self.session.scalar(
            _guarded(update(RunRow).where(RunRow.id == run_id), guard)
            .values(**values)
            .returning(RunRow)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        if row is None:
            return None
        if change.status in FINISHED_STATUSES:
            for hook in self._on_finish:
                await hook(self.session, run_id)
        if row.status == RunStatus.QUEUED:  # made ready, or locked while a claim skipped it
            self.ready.add(run_id)
        run = to_run(row)
        return Written(run, await self._insert(run, events, row.last_seq))

    async def append(self, run_id: str, events: Sequence[NewEvent]) -> list[RunEvent]:
        """Append events to a run whatever its state (a write with no change)."""
        if not events:
            return []
        written = await self.write(run_id, NO_CHANGE, ANY_RUN, events)
        if written is None:
            raise LookupError(f"run {run_id} does not exist")
        return written.events

    async def _insert(self, run: Run, events: Sequence[NewEvent], last_seq: int) -> list[RunEvent]:
        """Insert events numbered up to `last_seq` (already reserved on the run row)."""
        if not events:
            return []
        run_id = run.id
        first = last_seq - len(events) + 1
        rows = [
            RunEventRow(run_id=run_id, seq=first + index, kind=event.kind, payload=event.payload)
            for index, event in enumerate(events)
        ]
        self.session.add_all(rows)
        await self.session.flush()
        for hook in self._on_append:
            await hook(self.session, run, last_seq)
        self.appended_to.add(run_id)
        return [to_event(row) for row in rows]

    def audit(
        self,
        *,
        workspace_id: str,
        actor_id: str,
        action: str,
        subject: str,
        run_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Add to the audit trail (who stored, used or deleted a credential, who decided or
        cancelled) inside this transaction, so an entry exists exactly when its change does."""
        self.session.add(
            AuditRow(
                workspace_id=workspace_id,
                actor_id=actor_id,
                action=action,
                subject=subject,
                run_id=run_id,
                detail=detail or {},
            )
        )


class Database:
    """Session factories, listeners and hooks that every repository shares."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
    ) -> None:
        self.sessions = sessions
        self.reads = reads
        self.on_finish: list[FinishHook] = []
        self.on_append: list[AppendHook] = []
        self._listeners: list[Listener] = []
        # SQLite's one writer at a time, queued in this process (`store.writers`; set by
        # `Store`); PostgreSQL needs none. `_writing` holds the tasks inside a unit of work, so
        # re-entry fails at once.
        self.writers: WriterQueue | None = None
        self._writing: weakref.WeakSet[asyncio.Task[object]] = weakref.WeakSet()
        # PostgreSQL: other replicas are told too (`store.wakeups`), as this origin.
        self.tell_others = False
        self.origin = new_origin()
        self.postgres = False  # set by `Store`: row locks that skip what others hold

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def notify(self, topic: str, run_id: str) -> None:
        for listener in self._listeners:
            try:
                listener(topic, run_id)
            except Exception:
                log.exception("store listener failed", extra={"run_id": run_id})

    @contextlib.asynccontextmanager
    async def work(self, *, urgent: bool = False) -> AsyncIterator[RunWork]:
        """One transaction; listeners hear of its events and ready runs once it commits.
        `urgent`: a person waits on it (a start, a click, a key), so on SQLite it goes
        before the runs' own writes."""
        task = asyncio.current_task()
        if task is not None and task in self._writing:
            # It would wait on itself for ever: on the writer lock (SQLite), or on its own
            # outer transaction's row locks (PostgreSQL).
            raise RuntimeError("a unit of work was opened inside another one")
        turn = self.writers.turn(urgent=urgent) if self.writers else contextlib.nullcontext()
        async with turn:
            if task is not None:
                self._writing.add(task)
            try:
                async with self.sessions.begin() as session:
                    work = RunWork(session, self.on_finish, self.on_append)
                    yield work
                    if self.tell_others:  # delivered when, and only if, this commits
                        await send(session, self.origin, _messages(work))
            finally:
                if task is not None:
                    self._writing.discard(task)
        for topic, run_id in _messages(work):
            self.notify(topic, run_id)


def _messages(work: RunWork) -> list[tuple[str, str]]:
    """What a committed unit of work tells listeners: new events, then runs ready."""
    return [(EVENT, r) for r in sorted(work.appended_to)] + [
        (RUN_READY, r) for r in sorted(work.ready)
    ]


class Repository:
    """One session per unit of work; never a session shared by concurrent tasks.
    `_db.work()` for writes; `_db.reads()` for sessions that only read."""

    def __init__(self, db: Database) -> None:
        self._db = db
