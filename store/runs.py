"""Runs and their ordered events: the run lifecycle. Every write goes through `RunWork`."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store.changes import ANY_RUN, Guard, Lease, RunChange
from store.events import NewEvent
from store.models import RunEventRow, RunRow, utcnow
from store.records import FRONT_END_HOLD, Run, RunEvent, RunStatus
from store.replies import insert_new_keys
from store.work import Repository, Written, new_id, to_event, to_run


class RunRepository(Repository):
    async def create(
        self,
        *,
        workspace_id: str,
        channel_id: str,
        requester_id: str,
        task: str,
        idempotency_key: str | None = None,
        thread_ts: str | None = None,
        events: Sequence[NewEvent] = (),
        hold_until: datetime | None = None,
        team_name: str | None = None,
        inbound_keys: Sequence[str] = (),
    ) -> tuple[Run, bool]:
        """Create a queued run with its first events (so nobody can see it without them);
        the same idempotency key returns the first run and False. `hold_until` keeps
        replicas from claiming it until the front end has shown it (`release_hold`)."""
        row = RunRow(
            id=new_id(),
            workspace_id=workspace_id,
            channel_id=channel_id,
            requester_id=requester_id,
            task=task,
            thread_ts=thread_ts,
            status=RunStatus.QUEUED,
            lease_owner=FRONT_END_HOLD if hold_until else None,
            lease_expires_at=hold_until,
            idempotency_key=idempotency_key,
            team_name=team_name,
            turns=0,
            prompt_tokens=0,
            completion_tokens=0,
            recoveries=0,
            last_seq=0,
        )
        try:
            async with self._db.work(urgent=True) as work:
                work.session.add(row)
                await work.session.flush()
                await work.append(row.id, events)
                await insert_new_keys(work.session, row.id, inbound_keys)
                if hold_until is None:
                    work.ready.add(row.id)
        except IntegrityError:
            if idempotency_key is None:
                raise
            existing = await self.get_by_idempotency_key(idempotency_key)
            if existing is None:
                raise
            return existing, False
        return to_run(row), True

    async def change(
        self,
        run_id: str,
        change: RunChange,
        guard: Guard = ANY_RUN,
        events: Sequence[NewEvent] = (),
    ) -> Written | None:
        """Change the run if it is as `guard` says and append `events`, in one transaction;
        None (nothing written) when the guard did not hold."""
        async with self._db.work() as work:
            return await work.write(run_id, change, guard, events)

    async def release_hold(
        self, run_id: str, *, thread_ts: str | None, root_ts: str | None = None
    ) -> bool:
        """The front end is done: attach its root message as the run's thread (or, with
        `root_ts`, its root posted as a reply in the thread the run was created in) and let
        replicas claim the run. False when the run already has another thread (the hold
        lapsed and the publisher posted a root of its own) or no longer exists."""
        async with self._db.work(urgent=True) as work:
            if root_ts is not None:  # a reply root in a thread the run had from the start
                attached = await self._attach_root(work.session, run_id, root_ts)
            else:
                attached = thread_ts is not None and await self._attach(
                    work.session, run_id, thread_ts
                )
            await work.change(
                run_id,
                RunChange(status=RunStatus.QUEUED),
                Guard(statuses=frozenset({RunStatus.QUEUED}), held_by=FRONT_END_HOLD),
            )
            work.appended_to.add(run_id)  # its events can be shown now: it has a thread
        return attached

    async def discard(self, run_id: str) -> bool:
        """Delete a run that never got going (its front end could not show it)."""
        async with self._db.work(urgent=True) as work:
            result = await work.session.execute(
                delete(RunRow).where(RunRow.id == run_id, RunRow.lease_owner == FRONT_END_HOLD)
            )
            return result.rowcount == 1

    async def attach_thread(self, run_id: str, thread_ts: str) -> bool:
        """Give a run its Slack thread once; whoever comes second learns it lost."""
        async with self._db.work() as work:
            return await self._attach(work.session, run_id, thread_ts)

    @staticmethod
    async def _attach(session: AsyncSession, run_id: str, thread_ts: str) -> bool:
        return await _set_once(session, run_id, RunRow.thread_ts, thread_ts)

    @staticmethod
    async def _attach_root(session: AsyncSession, run_id: str, root_ts: str) -> bool:
        return await _set_once(session, run_id, RunRow.root_ts, root_ts)

    async def claim_next(self, *, owner: str, lease_s: float) -> Run | None:
        """Take the oldest queued run for this replica, or None. Safe across replicas."""
        now = utcnow()
        lease = Lease(owner, now + timedelta(seconds=lease_s))
        if self._db.postgres:  # one transaction, and no replica waits on another
            return await self._claim_skipping_locked(now, lease)
        async with self._db.reads() as session:
            candidates = list(await session.scalars(_claimable(now).limit(5)))
        for run_id in candidates:
            # Still queued and not held (a front end's hold may have been taken meanwhile).
            async with self._db.work() as work:
                claimed = await work.change(run_id, *_claim(now, lease))
            if claimed is not None:
                return claimed
        return None

    async def _claim_skipping_locked(self, now: datetime, lease: Lease) -> Run | None:
        """PostgreSQL's `FOR NO KEY UPDATE SKIP LOCKED`: replicas claiming at once each
        take a different run in one transaction, instead of racing for the same few."""
        async with self._db.work() as work:
            run_id = await work.session.scalar(
                _claimable(now).limit(1).with_for_update(skip_locked=True, key_share=True)
            )
            if run_id is None:
                return None
            return await work.change(run_id, *_claim(now, lease))

    async def renew_leases(
        self, run_ids: Collection[str], *, owner: str, lease_s: float
    ) -> set[str]:
        """Extend the leases of every run this replica drives, in one statement (one write
        per replica per renewal, whatever the number of runs); the ids returned are still
        its own, any other was taken, cancelled or ended elsewhere. Only the expiry moves:
        nothing about the run changed, so no listener is told."""
        if not run_ids:
            return set()
        async with self._db.work() as work:
            renewed = await work.session.scalars(
                update(RunRow)
                .where(
                    RunRow.id.in_(list(run_ids)),
                    RunRow.status == RunStatus.RUNNING,
                    RunRow.lease_owner == owner,
                )
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
                .returning(RunRow.id)
            )
            return set(renewed)

    async def get(self, run_id: str) -> Run | None:
        async with self._db.reads() as session:
            row = await session.get(RunRow, run_id)
            return to_run(row) if row else None

    async def get_by_idempotency_key(self, key: str) -> Run | None:
        async with self._db.reads() as session:
            row = await session.scalar(select(RunRow).where(RunRow.idempotency_key == key))
            return to_run(row) if row else None

    async def list_for_user(self, *, workspace_id: str, user_id: str, limit: int = 20) -> list[Run]:
        async with self._db.reads() as session:
            rows = await session.scalars(
                select(RunRow)
                .where(RunRow.workspace_id == workspace_id, RunRow.requester_id == user_id)
                .order_by(RunRow.created_at.desc())
                .limit(limit)
            )
            return [to_run(row) for row in rows]

    async def count_by_status(self, status: RunStatus) -> int:
        async with self._db.reads() as session:
            count = await session.scalar(
                select(func.count()).select_from(RunRow).where(RunRow.status == status)
            )
            return int(count or 0)

    async def orphaned(self, *, now: datetime | None = None) -> list[Run]:
        """Runs marked running whose owner's lease has lapsed: their process died."""
        now = now or utcnow()
        async with self._db.reads() as session:
            rows = await session.scalars(
                select(RunRow).where(
                    RunRow.status == RunStatus.RUNNING,
                    or_(RunRow.lease_expires_at.is_(None), RunRow.lease_expires_at < now),
                )
            )
            return [to_run(row) for row in rows]

    async def next_lapse(self, *, owner: str) -> datetime | None:
        """When the first lease another replica holds on a running run lapses (unless it
        is renewed first): a replica looks for orphans then, not a poll later."""
        async with self._db.reads() as session:
            return await session.scalar(
                select(func.min(RunRow.lease_expires_at)).where(
                    RunRow.status == RunStatus.RUNNING, RunRow.lease_owner != owner
                )
            )

    async def events(self, run_id: str, *, after_seq: int = 0) -> list[RunEvent]:
        """The run's events after `after_seq`, in order: how any front end follows a run."""
        async with self._db.reads() as session:
            rows = await session.scalars(
                select(RunEventRow)
                .where(RunEventRow.run_id == run_id, RunEventRow.seq > after_seq)
                .order_by(RunEventRow.seq)
            )
            return [to_event(row) for row in rows]


def _claimable(now: datetime) -> Select[tuple[str]]:
    """Queued runs nobody holds (no lease, or a lapsed one), oldest first."""
    return (
        select(RunRow.id)
        .where(
            RunRow.status == RunStatus.QUEUED,
            or_(RunRow.lease_expires_at.is_(None), RunRow.lease_expires_at < now),
        )
        .order_by(RunRow.created_at)
    )


def _claim(now: datetime, lease: Lease) -> tuple[RunChange, Guard]:
    """Running under `lease`, if the run is still queued and unheld (a front end's hold
    may have been taken meanwhile)."""
    return (
        RunChange(status=RunStatus.RUNNING, lease=lease),
        Guard(statuses=frozenset({RunStatus.QUEUED}), lapsed_before=now),
    )


async def _set_once(session: AsyncSession, run_id: str, column: Any, value: str) -> bool:
    """Set a run's column if nobody has yet: of two writers, the second learns it lost."""
    result = await session.execute(
        update(RunRow).where(RunRow.id == run_id, column.is_(None)).values({column: value})
    )
    return result.rowcount == 1
