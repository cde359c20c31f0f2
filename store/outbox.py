"""The outbox: what a delivering front end (the Slack publisher) has shown of each run.

The event log itself (`runs.events`) carries no delivery state, so any other consumer (a web
API streaming a run from a sequence number) reads the same log without touching this. Per
run, the outbox keeps how far delivery got (`delivered_seq`, and the parts of a long message
already out), who may deliver right now (a claim that lapses when its replica dies), and
the reference of each message shown (Slack's `ts`), with the prompts whose buttons are still
live. The unit of work keeps `wanted_seq` in step with every append (`track`), so the runs
with something to deliver come from a partial index instead of a scan of the log.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import upsert
from store.models import OutboxMessageRow, OutboxRow, RunEventRow, RunRow, utcnow
from store.records import NO_CHANNEL, Run, RunEvent
from store.work import Repository, to_event, to_run


@dataclass(frozen=True)
class Shown:
    """A message the front end showed for an event: its reference and the event."""

    ref: str
    event: RunEvent
    topic: str | None = None


@dataclass(frozen=True)
class LiveMessage:
    """The message showing a reply while it is written, before its event exists: posted by
    `source`'s turn, still a Slack stream when `streaming`. The reply's event replaces its
    content; any other message shown first removes it."""

    ref: str
    source: str
    streaming: bool


@dataclass(frozen=True)
class Backlog:
    """One run's undelivered events, read once for a delivery pass (events first, then the
    run, so the run is at least as new as its events). `parts_done` parts of the first
    event are already out, the last of them as `part_ref`; `live` is the message showing
    the reply being written, if any."""

    run: Run
    events: list[RunEvent]
    parts_done: int
    part_ref: str | None
    live: LiveMessage | None = None


SHOWN = "shown"  # a listener's topic (this process only): the run's thread caught up a step


class OutboxRepository(Repository):
    @staticmethod
    async def track(session: AsyncSession, run: Run, last_seq: int) -> None:
        """The unit of work's append hook: the run now has events up to `last_seq`. A run
        started from the web API has no Slack channel: nothing of it is delivered."""
        if run.channel_id == NO_CHANNEL:
            return
        await upsert(
            session,
            OutboxRow,
            {"run_id": run.id, "wanted_seq": last_seq, "delivered_seq": 0, "parts_done": 0},
            key=["run_id"],
            update={"wanted_seq": last_seq},
        )

    async def unshown(self, run_id: str) -> int:
        """How many of the run's events its thread has yet to show (0 for a run with no
        place in Slack)."""
        async with self._db.reads() as session:
            behind = await session.scalar(
                select(OutboxRow.wanted_seq - OutboxRow.delivered_seq).where(
                    OutboxRow.run_id == run_id
                )
            )
            return max(0, int(behind or 0))

    async def pending(self, *, limit: int = 500) -> list[str]:
        """Runs with events not yet delivered, in no fixed order: past `limit` (runs that
        Slack keeps waiting, say), the next call may return others, so none starves."""
        async with self._db.reads() as session:
            rows = await session.scalars(
                select(OutboxRow.run_id)
                .where(OutboxRow.wanted_seq > OutboxRow.delivered_seq)
                .order_by(func.random())
                .limit(limit)
            )
            return list(rows)

    async def claim(self, run_id: str, *, owner: str, lease_s: float) -> bool:
        """Take the right to deliver this run's events, at the start of a pass. One replica
        at a time holds it (renewed before every call to Slack, `renew`), and delivery is
        recorded only from where the cursor stands, so an event is shown once unless a
        holder stalls for longer than its claim in the middle of one call; a dead
        holder's claim lapses."""
        now = utcnow()
        async with self._db.work() as work:
            result = await work.session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.run_id == run_id,
                    or_(
                        OutboxRow.claim_owner.is_(None),
                        OutboxRow.claim_owner == owner,
                        OutboxRow.claim_expires_at.is_(None),
                        OutboxRow.claim_expires_at < now,
                    ),
                )
                .values(claim_owner=owner, claim_expires_at=now + timedelta(seconds=lease_s))
            )
            return result.rowcount == 1

    async def renew(self, run_id: str, *, owner: str, lease_s: float) -> bool:
        """Extend a claim this replica still holds; False when another took it (and maybe
        released it since): the pass must stop, what it read may have been shown meanwhile.
        A claim that lapsed with nobody taking it is still this replica's: nobody else can
        have posted without first taking it."""
        async with self._db.work() as work:
            result = await work.session.execute(
                update(OutboxRow)
                .where(OutboxRow.run_id == run_id, OutboxRow.claim_owner == owner)
                .values(claim_expires_at=utcnow() + timedelta(seconds=lease_s))
            )
            return result.rowcount == 1

    async def renew_all(self, run_ids: Collection[str], *, owner: str, lease_s: float) -> set[str]:
        """Extend every claim in `run_ids` this replica still holds, in one statement (a
        background renewal, so a pass that waits on Slack keeps a short claim); the ids
        returned are renewed, any other was taken by another replica or released."""
        if not run_ids:
            return set()
        async with self._db.work() as work:
            renewed = await work.session.scalars(
                update(OutboxRow)
                .where(OutboxRow.run_id.in_(list(run_ids)), OutboxRow.claim_owner == owner)
                .values(claim_expires_at=utcnow() + timedelta(seconds=lease_s))
                .returning(OutboxRow.run_id)
            )
            return set(renewed)

    async def take_over(self, run_id: str, *, dead_owner: str, lease_s: float) -> bool:
        """Free the claim a replica whose run lease lapsed left on the run, so whoever
        takes up the run posts it at once rather than when the claim lapses. Only a claim
        not renewed for a third of `lease_s` is freed: within that a holder trusts its
        claim without asking (`Publisher._renew`), so it cannot be posting meanwhile."""
        trusted_until = utcnow() + timedelta(seconds=lease_s * 2 / 3)
        async with self._db.work() as work:
            result = await work.session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.run_id == run_id,
                    OutboxRow.claim_owner == dead_owner,
                    OutboxRow.claim_expires_at < trusted_until,
                )
                .values(claim_owner=None, claim_expires_at=None)
            )
            return result.rowcount == 1

    async def release(self, run_id: str, *, owner: str) -> None:
        async with self._db.work() as work:
            await work.session.execute(
                update(OutboxRow)
                .where(OutboxRow.run_id == run_id, OutboxRow.claim_owner == owner)
                .values(claim_owner=None, claim_expires_at=None)
            )

    async def backlog(self, run_id: str) -> Backlog | None:
        async with self._db.reads() as session:
            cursor = await session.get(OutboxRow, run_id)
            if cursor is None:
                return None
            rows = await session.scalars(
                select(RunEventRow)
                .where(RunEventRow.run_id == run_id, RunEventRow.seq > cursor.delivered_seq)
                .order_by(RunEventRow.seq)
            )
            events = [to_event(row) for row in rows]
            run = await session.get(RunRow, run_id)
            if run is None:
                return None
            live = None
            if cursor.live_ref is not None:
                live = LiveMessage(
                    cursor.live_ref, cursor.live_source or "", bool(cursor.live_streaming)
                )
            return Backlog(to_run(run), events, cursor.parts_done, cursor.part_ref, live)

    async def shown(self, run_id: str, seq: int) -> Shown | None:
        """The message shown for event `seq` (the agent message a verdict belongs on)."""
        return await self._one(OutboxMessageRow.run_id == run_id, OutboxMessageRow.seq == seq)

    async def prompt(self, run_id: str, topic: str) -> Shown | None:
        """The message that asked `topic` (a key request, a set of buttons)."""
        return await self._one(OutboxMessageRow.run_id == run_id, OutboxMessageRow.topic == topic)

    async def open_prompts(self, run_id: str) -> list[Shown]:
        """Prompts whose buttons are still live, oldest first."""
        async with self._db.reads() as session:
            rows = await session.execute(
                self._joined()
                .where(OutboxMessageRow.run_id == run_id, OutboxMessageRow.open.is_(True))
                .order_by(OutboxMessageRow.seq)
            )
            return [Shown(message.ref, to_event(event), message.topic) for message, event in rows]

    async def _one(self, *where: object) -> Shown | None:
        async with self._db.reads() as session:
            found = (await session.execute(self._joined().where(*where).limit(1))).first()
            if found is None:
                return None
            message, event = found
            return Shown(message.ref, to_event(event), message.topic)

    @staticmethod
    def _joined() -> Select[tuple[OutboxMessageRow, RunEventRow]]:
        return select(OutboxMessageRow, RunEventRow).join(
            RunEventRow,
            and_(
                RunEventRow.run_id == OutboxMessageRow.run_id,
                RunEventRow.seq == OutboxMessageRow.seq,
            ),
        )

    async def delivered(
        self,
        run_id: str,
        seq: int,
        *,
        owner: str,
        ref: str | None,
        opens: str | None = None,
        closes: str | None = None,
        took_live: bool = False,
    ) -> bool:
        """Event `seq` is handled (shown as `ref`, or skipped with None); the cursor moves
        past it only from `seq - 1` and while `owner` holds the claim, so a delivery is
        recorded once. `opens` names the prompt it showed, `closes` the one it answered;
        `took_live`: it was shown in the live message, which is now its own."""
        values: dict[str, object] = {"delivered_seq": seq, "parts_done": 0, "part_ref": None}
        if took_live:
            values |= {"live_ref": None, "live_source": None, "live_streaming": False}
        async with self._db.work() as work:
            moved = await work.session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.run_id == run_id,
                    OutboxRow.delivered_seq == seq - 1,
                    OutboxRow.claim_owner == owner,
                )
                .values(**values)
            )
            if moved.rowcount != 1:
                return False
            if ref is not None:
                work.session.add(
                    OutboxMessageRow(
                        run_id=run_id, seq=seq, ref=ref, topic=opens, open=opens is not None
                    )
                )
            if closes is not None:
                await self._close(work.session, run_id, closes)
        self._db.notify(SHOWN, run_id)
        return True

    async def part_delivered(
        self, run_id: str, *, owner: str, ref: str, parts: int, took_live: bool = False
    ) -> bool:
        """Part `parts` of the next event's long message is out (the event is not done);
        False when `owner` no longer holds the claim. `took_live`: its first part is the
        live message, which is now the event's."""
        values: dict[str, object] = {"parts_done": parts, "part_ref": ref}
        if took_live:
            values |= {"live_ref": None, "live_source": None, "live_streaming": False}
        async with self._db.work() as work:
            result = await work.session.execute(
                update(OutboxRow)
                .where(OutboxRow.run_id == run_id, OutboxRow.claim_owner == owner)
                .values(**values)
            )
            return result.rowcount == 1

    async def live(self, run_id: str, *, owner: str, message: LiveMessage | None) -> bool:
        """Record the live message (posted, no longer a stream, or gone with None) before
        anything else is shown; False when `owner` no longer holds the claim."""
        async with self._db.work() as work:
            result = await work.session.execute(
                update(OutboxRow)
                .where(OutboxRow.run_id == run_id, OutboxRow.claim_owner == owner)
                .values(
                    live_ref=message.ref if message else None,
                    live_source=message.source if message else None,
                    live_streaming=bool(message and message.streaming),
                )
            )
            return result.rowcount == 1

    async def closed(self, run_id: str, topic: str) -> None:
        """A prompt's buttons were taken away (the run ended before anyone answered)."""
        async with self._db.work() as work:
            await self._close(work.session, run_id, topic)

    @staticmethod
    async def _close(session: AsyncSession, run_id: str, topic: str) -> None:
        await session.execute(
            update(OutboxMessageRow)
            .where(OutboxMessageRow.run_id == run_id, OutboxMessageRow.topic == topic)
            .values(open=False)
        )

    async def skip_rest(self, run_id: str) -> None:
        """Treat every event of the run as handled without showing it: for a run the front
        end can no longer show, so delivery stops trying."""
        try:
            await self._skip_rest(run_id)
        finally:
            self._db.notify(SHOWN, run_id)  # nothing is left for the run to wait on

    async def _skip_rest(self, run_id: str) -> None:
        async with self._db.work() as work:
            await work.session.execute(
                update(OutboxRow)
                .where(OutboxRow.run_id == run_id)
                .values(
                    delivered_seq=OutboxRow.wanted_seq,
                    parts_done=0,
                    part_ref=None,
                    live_ref=None,
                    live_source=None,
                    live_streaming=False,
                )
            )
