"""Replies in a run's thread: finding the run, and acting on each Slack message once.

Slack delivers a message event again when it thinks the app missed it, and one message may
come by more than one event; so every message is remembered by each of its ids (the
event's, the message's) in the same transaction as what it did to its run. A delivery
whose ids are known changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from store import events as ev
from store.changes import Guard, RunChange
from store.events import NewEvent
from store.models import InboundMessageRow, RunRow
from store.records import FINISHED_STATUSES, Run, RunStatus, Totals
from store.work import Repository, to_run

# A reply is heard at the team's next turn while the run is queued, running or waiting for a
# key; a run waiting for a decision is revised instead, a finished one continued.
_HEARING = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_CREDENTIAL)
HEARING = Guard.status_in(_HEARING)
HEARING_OR_DECIDING = Guard.status_in([*_HEARING, RunStatus.WAITING_APPROVAL])
FINISHED = Guard.status_in(FINISHED_STATUSES)


class ReplyOutcome(StrEnum):
    HEARD = "heard"  # the team reads it at its next turn
    CONTINUED = "continued"  # the finished run goes on from it
    DUPLICATE = "duplicate"  # this message was acted on already
    MOVED_ON = "moved_on"  # the run changed state meanwhile: nothing written


class _Known(Exception):
    """Raised inside a unit of work to roll it back: the message was acted on before."""


class ReplyRepository(Repository):
    async def in_thread(self, channel_id: str, thread_ts: str) -> Run | None:
        """The run working in this thread (the latest, should there be several)."""
        async with self._db.reads() as session:
            row = await session.scalar(
                select(RunRow)
                .where(RunRow.channel_id == channel_id, RunRow.thread_ts == thread_ts)
                .order_by(RunRow.created_at.desc())
                .limit(1)
            )
            return to_run(row) if row else None

    async def known(self, keys: Iterable[str]) -> bool:
        """Whether any of these message ids was acted on already."""
        async with self._db.reads() as session:
            found = await session.scalar(
                select(InboundMessageRow.key).where(InboundMessageRow.key.in_(list(keys))).limit(1)
            )
            return found is not None

    async def remember(self, run_id: str, keys: Iterable[str]) -> None:
        """Note message ids acted on by some other write (a decision, say)."""
        async with self._db.work(urgent=True) as work:
            await insert_new_keys(work.session, run_id, keys)

    async def hear(
        self, run: Run, *, user_id: str, text: str, keys: list[str], deciding: bool = False
    ) -> ReplyOutcome:
        """Keep a reply for the team's next turn (`human_reply`); `deciding`: also while the
        run waits for a decision the reply cannot stand for."""
        event = NewEvent(ev.HUMAN_REPLY, {"user_id": user_id, "text": text})
        guard = HEARING_OR_DECIDING if deciding else HEARING
        return await self._write(run, keys, RunChange(), guard, event, ReplyOutcome.HEARD)

    async def claim(self, run_id: str, keys: list[str]) -> bool:
        """Take the message's ids before acting on it in another unit of work (a decision):
        False when another delivery of it took them first."""
        try:
            async with self._db.work(urgent=True) as work:
                if not await insert_new_keys(work.session, run_id, keys):
                    raise _Known()
        except _Known:
            return False
        return True

    async def continue_run(
        self,
        run: Run,
        *,
        user_id: str,
        text: str,
        resume_input: str,
        keys: list[str],
        heard_through: int = 0,
    ) -> ReplyOutcome:
        """A finished run goes on (same team state, same thread) with the reply as its next
        input; the totals it had count as its new starting point for the limits.
        `heard_through`: the replies in its log that input carries (so none is given twice)."""
        totals: Totals = run.totals
        event = NewEvent(
            ev.RUN_CONTINUED,
            {
                "user_id": user_id,
                "text": text,
                "turns": totals.turns,
                "active_s": run.active_s,
                "tokens": totals.tokens,
                **({"heard_through": heard_through} if heard_through else {}),
            },
        )
        change = RunChange(status=RunStatus.QUEUED, resume_input=resume_input)
        return await self._write(run, keys, change, FINISHED, event, ReplyOutcome.CONTINUED)

    async def _write(
        self,
        run: Run,
        keys: list[str],
        change: RunChange,
        guard: Guard,
        event: NewEvent,
        done: ReplyOutcome,
    ) -> ReplyOutcome:
        try:
            async with self._db.work(urgent=True) as work:
                if not await insert_new_keys(work.session, run.id, keys):
                    raise _Known()
                written = await work.write(run.id, change, guard, [event])
                if written is None:
                    raise _MovedOn()
        except _Known:
            return ReplyOutcome.DUPLICATE
        except _MovedOn:
            return ReplyOutcome.MOVED_ON
        return done


class _MovedOn(Exception):
    """Raised inside a unit of work to roll it back: the run's guard did not hold."""


async def insert_new_keys(session: AsyncSession, run_id: str, keys: Iterable[str]) -> bool:
    """Insert the keys; False when any was there already (two deliveries at once included:
    the second insert of a key does nothing)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    fresh = True
    for key in dict.fromkeys(keys):
        statement = insert(InboundMessageRow).values(key=key, run_id=run_id)
        result = await session.execute(statement.on_conflict_do_nothing(index_elements=["key"]))
        fresh = fresh and result.rowcount == 1
    return fresh
