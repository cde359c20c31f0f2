"""Turn persisted run events into Slack messages: in order per thread, at most once each.

The outbox (`store.outbox`) says which runs have events not yet shown. For each, a pass
(`delivery.RunDelivery`) shows them in sequence order and records each message's `ts`
before the next is sent. A 429 waits for `Retry-After`; 5xx and connection errors back off;
both are bounded, after which the run's remaining events wait for the next pass (a restart
included) rather than being lost or reordered. Errors Slack will never accept are logged
and skipped, so one bad event cannot block a thread forever; a channel Slack no longer
posts to ends the run.

With several replicas, each runs a publisher; a run's events are posted by whichever holds
the run's publishing claim in the outbox (taken at the start of a pass, renewed in the
background and checked before every Slack call, released after the pass; the replica
driving the run keeps it between passes, until the run has been idle for half a claim, is
finished, or the replica stops), and a delivery is recorded only from where the cursor
stands: a replica that lost the claim stops before posting anything more. A claim lasts
about a run lease, so a dead replica's posting is taken over about when its runs are. A
long message's parts are recorded one by one, so a failure between parts resumes after
the last part that went out.

A run normally gets its root message from the /autogen listener while it is held. If that
never happens (the process died in between, or Slack kept the post waiting past the hold),
the publisher posts the root itself, so no run works unseen; the first root attached wins
and a late duplicate is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import RunDelivery
from bot.live_replies import LiveBudgets
from bot.pass_slots import PassSlots
from bot.posting_pace import PostingPace
from bot.slack_calls import ClaimLost, RetryPolicy, SlackCaller, SlackRefused, SlackUnavailable
from runner.drafts import Drafts
from store import Store
from store.outbox import Backlog
from store.work import EVENT

# Called with (run id, Slack's error) when Slack refuses to show a run at all.
UnshowableHandler = Callable[[str, str], Awaitable[object]]

log = logging.getLogger(__name__)
T = TypeVar("T")

PARALLEL_RUNS = 8  # passes working at once, well inside the database pool (5 + 10 overflow)
LIVE_IDLE_CHECK_S = 5.0  # a live reply with nothing new is looked at again this often
FOLLOW_RETRY_S = 1.0  # another replica holds a run whose reply is being written here
QUICK_POLICY = RetryPolicy(max_attempts=2, base_delay_s=0.2, max_delay_s=2.0)  # live calls


class Publisher:
    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        *,
        max_attempts: int = 8,
        max_delay_s: float = 30.0,
        base_delay_s: float = 0.5,
        poll_interval_s: float = 2.0,
        claim_s: float = 90.0,
        owner: str | None = None,
        on_unshowable: UnshowableHandler | None = None,
        agent_identities: bool = False,
        drafts: Drafts | None = None,
        keeps_claim: Callable[[str], bool] | None = None,
    ) -> None:
        self._store = store
        # Which runs keep their claim between passes: those this replica drives (whose
        # replies it alone can show live). Another replica's run is let go of after each
        # pass, so that replica can take up its posting.
        self._keeps_claim = keeps_claim or (lambda _run_id: False)
        self._drafts = drafts  # replies being written in this process (None: not shown live)
        self._live_budgets = LiveBudgets()
        self._pace = PostingPace()  # every channel's posts, whichever run's pass posts them
        self._changed: dict[str, asyncio.Event] = {}  # a followed run's draft or events moved
        self._new_events: set[str] = set()
        self._again: set[str] = set()  # runs that changed while a pass held them
        # Passes that follow a live reply: one per run at most, outside the PARALLEL_RUNS
        # slots (they mostly wait on the model, and there are only as many as the runs
        # this process executes), waited for by `stop`.
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._passes: dict[str, asyncio.Task[None]] = {}  # the loop's, one per run at most
        self._follow_not_before: dict[str, float] = {}  # after another replica held the run
        self._agent_identities = agent_identities
        self._client = client
        self._policy = RetryPolicy(max_attempts, base_delay_s, max_delay_s)
        self._owner = owner or f"publisher-{uuid.uuid4().hex[:8]}"
        self._claim_s = claim_s
        self._poll_interval_s = poll_interval_s
        self._on_unshowable = on_unshowable
        self._not_before: dict[str, float] = {}
        self._held_since: dict[str, float] = {}  # loop time the claim was last taken/renewed
        self._lost: set[str] = set()  # claims the background renewal found taken
        # Claims kept between passes (loop time the last pass ended): a run that goes on
        # posting is not claimed and released around every message; the claim keeper
        # lets go of those idle for half a claim.
        self._idle_since: dict[str, float] = {}
        self._claim_keeper: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[object]] = set()  # the keeper's, on their way
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}  # passes holding or awaiting each lock
        self._wake = asyncio.Event()
        self._slots = PassSlots(PARALLEL_RUNS)
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        store.subscribe(self._on_store_change)
        if drafts is not None:
            drafts.subscribe(self._on_draft)

    def _on_store_change(self, topic: str, run_id: str) -> None:
        if topic == EVENT:
            if run_id in self._changed:  # a follower is on the run: it delivers them next
                self._new_events.add(run_id)
                self._poke(run_id)
            if run_id in self._passes or run_id in self._locks:
                self._again.add(run_id)  # a pass is on it: looked at when it is over
            else:
                self._wake.set()

    def _on_draft(self, run_id: str) -> None:
        """A reply is being written: a pass for its run follows it, unless one is on the
        run already (a delivering pass hands over to a follower when it ends)."""
        self._poke(run_id)
        if self._drafts is None or self._drafts.get(run_id) is None:
            self._follow_not_before.pop(run_id, None)  # the turn is over: nothing to follow
            return
        loop = asyncio.get_running_loop()
        if (
            self._stopping
            or run_id in self._followers
            or self._is_held(run_id)
            or loop.time() < self._follow_not_before.get(run_id, 0.0)
        ):
            return
        task = loop.create_task(self._follow(run_id), name=f"live-reply-{run_id}")
        self._followers[run_id] = task
        task.add_done_callback(lambda _: self._followers.pop(run_id, None))

    async def _follow(self, run_id: str) -> None:
        try:
            await self.publish_run(run_id, follow=True)
        except Exception:
            log.exception("live reply pass failed", extra={"run_id": run_id})
        self._handed_back(run_id)

    def _handed_back(self, run_id: str) -> None:
        """A pass of the run is over: if the loop skipped the run meanwhile, it looks now."""
        if run_id in self._again:
            self._again.discard(run_id)
            self._wake.set()

    def _poke(self, run_id: str) -> None:
        changed = self._changed.get(run_id)
        if changed is not None:
            changed.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="slack-publisher")
        self._claim_keeper = asyncio.create_task(self._keep_claims(), name="claim-keeper")

    async def _keep_claims(self) -> None:
        """Every quarter of a claim, renew every claim a pass holds here in one write: a
        pass waiting out a Retry-After or a backoff keeps its claim although the claim is
        short. A claim found taken is marked lost; its pass stops before its next call. As
        with run leases (`RunManager._keep_leases`), a renewal is never cut off halfway."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._claim_s / 4)
            held = dict(self._held_since)
            asked = loop.time()  # the claim runs from before the write, not after it
            try:
                renewed = await self._uncut(
                    self._store.outbox.renew_all(held, owner=self._owner, lease_s=self._claim_s)
                )
            except Exception as exc:  # the passes' own checks ask again before each call
                log.warning("claim renewal failed (%s)", type(exc).__name__)
                continue
            for run_id, since in held.items():
                if self._held_since.get(run_id) != since:
                    continue  # released or claimed again meanwhile: that pass knows
                if run_id in renewed:
                    self._held_since[run_id] = asked
                else:
                    self._lost.add(run_id)
            try:  # after the renewal: however long the releases take, none waits on them
                await self._let_go_of_idle()
            except Exception as exc:  # a claim not released lapses after one claim
                log.warning("releasing idle claims failed (%s)", type(exc).__name__)

    async def stop(self, *, grace_s: float = 10.0) -> None:
        """Post what is pending, then stop. Every pass (the loop's, a follower's) finishes
        the event it is on rather than being cancelled between a Slack call and its record
        (which would post it twice); only past `grace_s` are they cancelled."""
        self._stopping = True
        self._wake.set()
        for changed in self._changed.values():
            changed.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        first = self._task or asyncio.ensure_future(self.drain())  # a last look for pending
        await asyncio.wait([first], timeout=grace_s)
        running = [first, *self._passes.values(), *self._followers.values()]
        late: set[asyncio.Task[None]] | set[asyncio.Future[None]] = {
            task for task in running if not task.done()
        }
        if late:
            _, late = await asyncio.wait(late, timeout=max(0.0, deadline - loop.time()))
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._claim_keeper is not None:  # first: it starts no write after this
            self._claim_keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._claim_keeper
        if self._writes:  # not cut off halfway
            await asyncio.wait(set(self._writes), timeout=grace_s)
        try:  # the next replica to post these runs need not wait for the claims to lapse
            await self._let_go_of_idle()
        except Exception as exc:
            log.warning("releasing claims at shutdown failed (%s)", type(exc).__name__)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._start_passes()
            except Exception:
                log.exception("publisher pass failed")
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)

    async def _start_passes(self) -> None:
        """A pass for every run with undelivered events that has none going: a run that
        waits (out a Retry-After, say) holds up no other run's events."""
        self._forget_stale()
        for run_id in await self._store.outbox.pending():
            if run_id in self._passes:
                self._again.add(run_id)  # its pass may have read its backlog before these
                continue
            task = asyncio.create_task(self._publish_in_turn(run_id), name=f"publish-{run_id}")
            self._passes[run_id] = task
            task.add_done_callback(lambda _, run=run_id: self._pass_done(run))

    def _pass_done(self, run_id: str) -> None:
        self._passes.pop(run_id, None)
        if not self._is_held(run_id):  # else its holder hands it back when done
            self._handed_back(run_id)

    def _forget_stale(self) -> None:
        """Waits that are over, for runs this replica may never see again (finished where
        another replica posted them)."""
        now = asyncio.get_running_loop().time()
        for waits in (self._not_before, self._follow_not_before):
            for run_id in [r for r, until in waits.items() if until <= now]:
                del waits[run_id]

    async def drain(self) -> None:
        """One pass: every run with undelivered events, a few runs at a time (hundreds at
        once would only queue on the database pool), each in order."""
        run_ids = await self._store.outbox.pending()
        await asyncio.gather(*(self._publish_in_turn(run_id) for run_id in run_ids))

    async def _publish_in_turn(self, run_id: str) -> None:
        """One run's pass; its failure (a database error, say) is its own, logged, and the
        other runs' passes go on: the run is tried again on the next pass."""
        async with self._slots.held():
            if self._is_held(run_id):  # looked at once the slot is ours
                self._again.add(run_id)  # a pass is on it (following a live reply, say)
                return
            try:
                await self.publish_run(run_id)
            except Exception:
                log.exception("publishing pass failed", extra={"run_id": run_id})
        self._handed_back(run_id)

    async def publish_run(self, run_id: str, *, follow: bool = False) -> None:
        """One pass over the run: its pending events, in order; with `follow`, then the
        reply it is writing, shown live until it is recorded (and delivered)."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._not_before.get(run_id, 0.0):
            return  # Slack asked us to wait
        finished = False
        async with self._run_lock(run_id):
            claimed = await self._claim(run_id)
            if not claimed and follow:  # not once per streamed chunk while another posts it
                self._follow_not_before[run_id] = loop.time() + FOLLOW_RETRY_S
            if claimed:
                try:
                    finished = await self._pass(run_id, follow=follow)
                except ClaimLost:
                    log.info("another replica took over posting", extra={"run_id": run_id})
                finally:
                    if (
                        finished
                        or self._stopping
                        or run_id in self._lost
                        or not self._keeps_claim(run_id)
                    ):
                        await self._let_go(run_id)
                    else:  # more may come soon: kept, renewed, let go of when idle
                        self._idle_since[run_id] = loop.time()
        if not claimed:  # another replica is posting this run: keep nothing of it here
            self._new_events.discard(run_id)
            return
        if finished:
            self._not_before.pop(run_id, None)
            self._follow_not_before.pop(run_id, None)
        elif not follow and self._drafts is not None and self._drafts.get(run_id) is not None:
            self._on_draft(run_id)  # a reply is being written: a follower shows it

    @contextlib.asynccontextmanager
    async def _run_lock(self, run_id: str) -> AsyncIterator[None]:
        """One pass of a run at a time in this process. The lock lives only while a pass
        holds or awaits it: a run between passes (waiting for a key, say) keeps nothing."""
        lock = self._locks.setdefault(run_id, asyncio.Lock())
        self._lock_users[run_id] = self._lock_users.get(run_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[run_id] -= 1
            if not self._lock_users[run_id]:
                del self._lock_users[run_id], self._locks[run_id]

    async def _let_go(self, run_id: str) -> None:
        self._held_since.pop(run_id, None)
        self._idle_since.pop(run_id, None)
        self._lost.discard(run_id)
        await self._store.outbox.release(run_id, owner=self._owner)

    async def _let_go_of_idle(self) -> None:
        """Release the claims kept for runs with no pass for half a claim, or no longer
        driven here (all of them when stopping), each under its run's lock. A run whose
        lock is taken is skipped: its pass keeps the claim or lets go of it, and the keeper
        never waits on a pass (its renewals would wait too). A release is never cut off
        halfway (stop waits for one on its way); events that came meanwhile are looked at
        once it is over."""
        now = asyncio.get_running_loop().time()
        idle = [
            run_id
            for run_id, since in self._idle_since.items()
            if self._stopping or now - since >= self._claim_s / 2 or not self._keeps_claim(run_id)
        ]
        for run_id in idle:
            if self._is_held(run_id):
                continue
            async with self._run_lock(run_id):
                if run_id in self._idle_since:
                    await self._uncut(self._let_go(run_id))
            self._handed_back(run_id)

    async def _uncut(self, write: Coroutine[Any, Any, T]) -> T:
        """The keeper's database write, never cut off halfway (a statement cut off can
        leave its connection unusable): cancelling the keeper leaves it running, and stop
        waits for it."""
        task = asyncio.create_task(write)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    def _is_held(self, run_id: str) -> bool:
        """Whether a pass (or the keeper) holds the run's lock now."""
        lock = self._locks.get(run_id)
        return lock is not None and lock.locked()

    async def _claim(self, run_id: str) -> bool:
        if self._idle_since.pop(run_id, None) is not None:
            if await self._renew(run_id):
                return True  # kept since the last pass, and still ours
            self._held_since.pop(run_id, None)  # taken meanwhile: ask as anyone would
            self._lost.discard(run_id)
        asked = asyncio.get_running_loop().time()
        claimed = await self._store.outbox.claim(run_id, owner=self._owner, lease_s=self._claim_s)
        if claimed:
            self._held_since[run_id] = asked
            self._lost.discard(run_id)
        return claimed

    async def _renew(self, run_id: str) -> bool:
        """Before each Slack call: is the claim still ours? Within the first third of a
        claim taken or renewed by this replica nobody else can hold it (another may only
        take an expired or released one), so the database is asked only after that."""
        if run_id in self._lost:
            return False
        now = asyncio.get_running_loop().time()
        if now - self._held_since.get(run_id, float("-inf")) < self._claim_s / 3:
            return True
        renewed = await self._store.outbox.renew(run_id, owner=self._owner, lease_s=self._claim_s)
        if renewed:
            self._held_since[run_id] = now
        return renewed

    async def _pass(self, run_id: str, *, follow: bool = False) -> bool:
        """Deliver what the run has pending, then show the reply being written until it is
        recorded (and deliver that); True when the run is finished and shown."""
        if follow:  # from here on, the run's new events and draft changes wake it
            self._changed.setdefault(run_id, asyncio.Event())
        try:
            while True:
                self._new_events.discard(run_id)
                backlog = await self._store.outbox.backlog(run_id)
                if backlog is None:
                    return True  # deleted meanwhile
                finished = await self._deliver(run_id, backlog, follow=follow)
                if finished is not None:
                    return finished
        finally:
            if follow:
                self._changed.pop(run_id, None)
                self._new_events.discard(run_id)

    async def _deliver(self, run_id: str, backlog: Backlog, *, follow: bool) -> bool | None:
        """One round of a pass; None when a live reply was followed and the run has more."""
        renew = lambda: self._renew(run_id)  # noqa: E731
        calls = {"before_attempt": renew, "pace": self._pace, "waiting": self._slots.given_back}
        delivery = RunDelivery(
            self._store,
            SlackCaller(self._client, self._policy, **calls),
            backlog,
            owner=self._owner,
            agent_identities=self._agent_identities,
            quick=SlackCaller(self._client, QUICK_POLICY, **calls),
            budgets=self._live_budgets,
        )
        try:
            if not await delivery.ensure_thread():
                return False  # its root message is not posted yet
            for event in delivery.events:
                await delivery.deliver(event)
            await delivery.refresh_root()
            if follow and await self._follow_live_reply(run_id, delivery):
                return None
        except SlackUnavailable as exc:
            if exc.retry_after_s:
                loop_time = asyncio.get_running_loop().time()
                self._not_before[run_id] = loop_time + exc.retry_after_s
            log.warning("slack unavailable; will retry", extra={"run_id": run_id})
            return False
        except SlackRefused as exc:  # the root refused, or the channel gone mid-thread
            await self._unshowable(run_id, str(exc))
            return True
        return delivery.run.status.finished

    async def _follow_live_reply(self, run_id: str, delivery: RunDelivery) -> bool:
        """Show the reply this process's run is writing, paced, until its turn is recorded
        (or other events come); False when there is no such reply."""
        drafts = self._drafts
        if (
            self._stopping
            or drafts is None
            or drafts.get(run_id) is None
            or delivery.run.status.finished
        ):
            return False
        changed = self._changed.setdefault(run_id, asyncio.Event())
        while not self._stopping and run_id not in self._new_events:
            changed.clear()
            draft = drafts.get(run_id)
            if draft is None:
                break
            await delivery.live.show(draft)
            wait = delivery.live.wait_s or LIVE_IDLE_CHECK_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=wait)
        return True

    async def _unshowable(self, run_id: str, error: str) -> None:
        """Slack will show nothing more of this run (channel gone, app removed from it):
        end the run, so nobody's key is spent on work nobody can follow or stop, and stop
        trying to post it."""
        log.error("slack will not show this run (%s); ending it", error, extra={"run_id": run_id})
        if self._on_unshowable is not None:
            await self._on_unshowable(run_id, error)
        await self._store.outbox.skip_rest(run_id)
