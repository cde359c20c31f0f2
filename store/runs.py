"""Runs and their ordered events. Appending an event and changing the run commit together."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store.base import Repository, new_id
from store.models import CredentialRequestRow, OfferedActionRow, RunEventRow, RunRow, utcnow
from store.records import (
    FINISHED_STATUSES,
    ActionStatus,
    RequestStatus,
    Run,
    RunEvent,
    RunStatus,
)


def to_run(row: RunRow) -> Run:
    return Run(
        id=row.id,
        workspace_id=row.workspace_id,
        channel_id=row.channel_id,
        thread_ts=row.thread_ts,
        requester_id=row.requester_id,
        task=row.task,
        status=RunStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        turns=row.turns,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        team_state=row.team_state,
        resume_input=row.resume_input,
        outcome=row.outcome,
        cancelled_by=row.cancelled_by,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        recoveries=row.recoveries,
        active_s=row.active_s or 0.0,
    )


def to_event(row: RunEventRow) -> RunEvent:
    return RunEvent(
        id=row.id,
        run_id=row.run_id,
        seq=row.seq,
        kind=row.kind,
        payload=dict(row.payload),
        created_at=row.created_at,
        slack_ts=row.slack_ts,
        posted_at=row.posted_at,
        parts_posted=row.parts_posted or 0,
    )


async def add_event(
    session: AsyncSession, run_id: str, kind: str, payload: dict[str, Any]
) -> RunEventRow:
    """Give the event the run's next sequence number; the counter row serialises writers."""
    seq = await session.scalar(
        update(RunRow)
        .where(RunRow.id == run_id)
        .values(last_seq=RunRow.last_seq + 1)
        .returning(RunRow.last_seq)
    )
    if seq is None:
        raise LookupError(f"run {run_id} does not exist")
    row = RunEventRow(run_id=run_id, seq=seq, kind=kind, payload=payload)
    session.add(row)
    await session.flush()
    return row


async def guarded_update(
    session: AsyncSession,
    run_id: str,
    *,
    expected: Iterable[RunStatus] | None,
    held_by: str | None,
    changes: dict[str, Any],
    lapsed_before: datetime | None = None,
) -> bool:
    """Change a run only from `expected` statuses and while replica `held_by` holds it: the
    compare-and-set every writer uses, so a cancel from anywhere wins at the next write.
    `lapsed_before` also requires the lease to have expired then (a takeover must not
    take a run whose owner renewed a moment ago)."""
    query = update(RunRow).where(RunRow.id == run_id)
    if expected is not None:
        query = query.where(RunRow.status.in_([str(s) for s in expected]))
    if held_by is not None:
        query = query.where(RunRow.lease_owner == held_by)
    if lapsed_before is not None:
        query = query.where(
            or_(RunRow.lease_expires_at.is_(None), RunRow.lease_expires_at < lapsed_before)
        )
    result = await session.execute(query.values(updated_at=utcnow(), **_finishing(changes)))
    if result.rowcount != 1:
        return False
    status = changes.get("status")
    if status is not None and RunStatus(status) in FINISHED_STATUSES:
        await _close_open_waits(session, run_id)
    return True


async def _attach_thread(session: AsyncSession, run_id: str, thread_ts: str) -> bool:
    result = await session.execute(
        update(RunRow)
        .where(RunRow.id == run_id, RunRow.thread_ts.is_(None))
        .values(thread_ts=thread_ts)
    )
    return result.rowcount == 1


async def _close_open_waits(session: AsyncSession, run_id: str) -> None:
    """A finished run answers nothing more: its pending key requests and undecided offers
    close in the same transaction, so no click or submission can slip in after the end."""
    now = utcnow()
    await session.execute(
        update(CredentialRequestRow)
        .where(
            CredentialRequestRow.run_id == run_id,
            CredentialRequestRow.status == RequestStatus.PENDING,
        )
        .values(status=RequestStatus.CANCELLED, resolved_at=now)
    )
    await session.execute(
        update(OfferedActionRow)
        .where(OfferedActionRow.run_id == run_id, OfferedActionRow.status == ActionStatus.OFFERED)
        .values(status=ActionStatus.SUPERSEDED, decided_at=now)
    )


def _finishing(changes: dict[str, Any]) -> dict[str, Any]:
    status = changes.get("status")
    if status is not None and RunStatus(status) in FINISHED_STATUSES:
        changes.setdefault("finished_at", utcnow())
        changes.setdefault("lease_owner", None)
        changes.setdefault("lease_expires_at", None)
    return changes


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
        events: list[tuple[str, dict[str, Any]]] | None = None,
        hold: tuple[str, datetime] | None = None,
    ) -> tuple[Run, bool]:
        """Create a queued run with its first events (so nobody can see it without them);
        the same idempotency key returns the first run and False. `hold` (owner, until)
        keeps replicas from claiming it until the front end has done its part."""
        row = RunRow(
            id=new_id(),
            workspace_id=workspace_id,
            channel_id=channel_id,
            requester_id=requester_id,
            task=task,
            thread_ts=thread_ts,
            status=RunStatus.QUEUED,
            lease_owner=hold[0] if hold else None,
            lease_expires_at=hold[1] if hold else None,
            idempotency_key=idempotency_key,
            turns=0,
            prompt_tokens=0,
            completion_tokens=0,
            recoveries=0,
            last_seq=0,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
                await session.flush()
                for kind, payload in events or []:
                    await add_event(session, row.id, kind, payload)
        except IntegrityError:
            if idempotency_key is None:
                raise
            existing = await self.get_by_idempotency_key(idempotency_key)
            if existing is None:
                raise
            return existing, False
        if events:
            self._notify("event", row.id)
        if hold is None:
            self._notify("run_ready", row.id)
        return to_run(row), True

    async def release_hold(self, run_id: str, *, owner: str, thread_ts: str | None) -> bool:
        """The front end is done: attach its root message as the run's thread and let
        replicas claim the run. False when the run already has another thread (the hold
        lapsed and the publisher posted a root of its own) or no longer exists."""
        async with self._sessions.begin() as session:
            attached = thread_ts is not None and await _attach_thread(session, run_id, thread_ts)
            await guarded_update(
                session,
                run_id,
                expected=[RunStatus.QUEUED],
                held_by=owner,
                changes={"lease_owner": None, "lease_expires_at": None},
            )
        self._notify("event", run_id)
        self._notify("run_ready", run_id)
        return attached

    async def discard(self, run_id: str, *, owner: str) -> bool:
        """Delete a run that never got going (its front end could not show it)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(RunRow).where(RunRow.id == run_id, RunRow.lease_owner == owner)
            )
            return result.rowcount == 1

    async def get(self, run_id: str) -> Run | None:
        async with self._reads() as session:
            row = await session.get(RunRow, run_id)
            return to_run(row) if row else None

    async def get_by_idempotency_key(self, key: str) -> Run | None:
        async with self._reads() as session:
            row = await session.scalar(select(RunRow).where(RunRow.idempotency_key == key))
            return to_run(row) if row else None

    async def list_for_user(self, *, workspace_id: str, user_id: str, limit: int = 20) -> list[Run]:
        async with self._reads() as session:
            rows = await session.scalars(
                select(RunRow)
                .where(RunRow.workspace_id == workspace_id, RunRow.requester_id == user_id)
                .order_by(RunRow.created_at.desc())
                .limit(limit)
            )
            return [to_run(row) for row in rows]

    async def list_by_status(self, statuses: Iterable[RunStatus]) -> list[Run]:
        async with self._reads() as session:
            rows = await session.scalars(
                select(RunRow)
                .where(RunRow.status.in_([str(s) for s in statuses]))
                .order_by(RunRow.created_at)
            )
            return [to_run(row) for row in rows]

    async def count_by_status(self, status: RunStatus) -> int:
        async with self._reads() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(RunRow).where(RunRow.status == status)
                )
                or 0
            )

    async def transition(
        self,
        run_id: str,
        *,
        expected: Iterable[RunStatus] | None = None,
        held_by: str | None = None,
        lapsed_before: datetime | None = None,
        events: list[tuple[str, dict[str, Any]]] | None = None,
        **changes: Any,
    ) -> list[RunEvent] | bool:
        """Change a run, optionally only from `expected` statuses or while replica `held_by`
        holds its lease, and append `events` in the same transaction.

        Returns the appended events (or True with none) on success, False when the run was
        not in an expected state: a compare-and-set that replicas can race on safely.
        """
        async with self._sessions.begin() as session:
            changed = await guarded_update(
                session,
                run_id,
                expected=expected,
                held_by=held_by,
                changes=dict(changes),
                lapsed_before=lapsed_before,
            )
            if not changed:
                return False
            appended = [await add_event(session, run_id, *event) for event in events or []]
            recorded = [to_event(row) for row in appended]
        if recorded:
            self._notify("event", run_id)
        if changes.get("status") == RunStatus.QUEUED:
            self._notify("run_ready", run_id)
        return recorded or True

    async def append_event(
        self, run_id: str, kind: str, payload: dict[str, Any], **changes: Any
    ) -> RunEvent:
        """Persist an event (and run changes) before anyone sees it."""
        changes = _finishing(dict(changes))
        async with self._sessions.begin() as session:
            row = await add_event(session, run_id, kind, payload)
            if changes:
                await session.execute(
                    update(RunRow).where(RunRow.id == run_id).values(updated_at=utcnow(), **changes)
                )
        self._notify("event", run_id)
        return to_event(row)

    async def claim_next(self, *, owner: str, lease_s: int) -> Run | None:
        """Take the oldest queued run for this replica, or None. Safe across replicas."""
        now = utcnow()
        async with self._reads() as session:
            candidates = list(
                await session.scalars(
                    select(RunRow.id)
                    .where(
                        RunRow.status == RunStatus.QUEUED,
                        or_(RunRow.lease_expires_at.is_(None), RunRow.lease_expires_at < now),
                    )
                    .order_by(RunRow.created_at)
                    .limit(5)
                )
            )
        for run_id in candidates:
            claimed = await self.transition(
                run_id,
                expected=[RunStatus.QUEUED],
                status=RunStatus.RUNNING,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_s),
                started_at=func.coalesce(RunRow.started_at, now),
            )
            if claimed:
                return await self.get(run_id)
        return None

    async def renew_lease(self, run_id: str, *, owner: str, lease_s: int) -> bool:
        """Extend this replica's lease; False means the run was taken or changed elsewhere."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(RunRow)
                .where(
                    RunRow.id == run_id,
                    RunRow.lease_owner == owner,
                    RunRow.status == RunStatus.RUNNING,
                )
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
            )
            return result.rowcount == 1

    async def orphaned(self, *, now: datetime | None = None) -> list[Run]:
        """Runs marked running whose owner's lease has lapsed: their process died."""
        now = now or utcnow()
        async with self._reads() as session:
            rows = await session.scalars(
                select(RunRow).where(
                    RunRow.status == RunStatus.RUNNING,
                    or_(RunRow.lease_expires_at.is_(None), RunRow.lease_expires_at < now),
                )
            )
            return [to_run(row) for row in rows]

    async def events(self, run_id: str, *, after_seq: int = 0) -> list[RunEvent]:
        async with self._reads() as session:
            rows = await session.scalars(
                select(RunEventRow)
                .where(RunEventRow.run_id == run_id, RunEventRow.seq > after_seq)
                .order_by(RunEventRow.seq)
            )
            return [to_event(row) for row in rows]

    async def runs_with_unposted_events(self, *, limit: int = 100) -> list[str]:
        async with self._reads() as session:
            rows = await session.scalars(
                select(RunEventRow.run_id)
                .where(RunEventRow.posted_at.is_(None))
                .group_by(RunEventRow.run_id)
                .order_by(func.min(RunEventRow.id))
                .limit(limit)
            )
            return list(rows)

    async def unposted_events(self, run_id: str) -> list[RunEvent]:
        async with self._reads() as session:
            rows = await session.scalars(
                select(RunEventRow)
                .where(RunEventRow.run_id == run_id, RunEventRow.posted_at.is_(None))
                .order_by(RunEventRow.seq)
            )
            return [to_event(row) for row in rows]

    async def mark_posted(self, event_id: int, *, slack_ts: str | None) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(RunEventRow)
                .where(RunEventRow.id == event_id)
                .values(slack_ts=slack_ts, posted_at=utcnow())
            )

    async def note_part_posted(self, event_id: int, *, slack_ts: str, parts: int) -> None:
        """Part `parts` of a long message is in Slack (the event is not done yet)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(RunEventRow)
                .where(RunEventRow.id == event_id)
                .values(slack_ts=slack_ts, parts_posted=parts)
            )

    async def claim_publishing(self, run_id: str, *, owner: str, lease_s: float) -> bool:
        """Take (or renew) the right to post this run's events to Slack. One replica at a
        time holds it, so no event is posted twice; a dead holder's claim lapses."""
        now = utcnow()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(RunRow)
                .where(
                    RunRow.id == run_id,
                    or_(
                        RunRow.publisher_owner.is_(None),
                        RunRow.publisher_owner == owner,
                        RunRow.publisher_expires_at < now,
                    ),
                )
                .values(
                    publisher_owner=owner,
                    publisher_expires_at=now + timedelta(seconds=lease_s),
                )
            )
            return result.rowcount == 1

    async def release_publishing(self, run_id: str, *, owner: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.publisher_owner == owner)
                .values(publisher_owner=None, publisher_expires_at=None)
            )

    async def skip_unposted(self, run_id: str) -> int:
        """Mark every unposted event of a run as handled without a Slack message: for a run
        Slack will not show, so the publisher stops trying."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(RunEventRow)
                .where(RunEventRow.run_id == run_id, RunEventRow.posted_at.is_(None))
                .values(posted_at=utcnow())
            )
            return int(result.rowcount)

    async def attach_thread(self, run_id: str, thread_ts: str) -> bool:
        """Give a run its Slack thread once; whoever comes second learns it lost."""
        async with self._sessions.begin() as session:
            return await _attach_thread(session, run_id, thread_ts)
