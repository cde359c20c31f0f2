"""RunManager: what the Slack side calls. Starts, cancels, decides, resumes and recovers runs.

Runs are claimed from the database by a scheduler loop (any replica can claim a queued run),
so a credential submitted or an action decided on one replica resumes the run on whichever
replica has room. A running run's lease is renewed while it runs; when renewal is refused
(the run was cancelled or taken over elsewhere) or none succeeds for three quarters of a
lease, its turn is aborted with the CancellationToken. One keeper renews every lease this
replica holds in one write, so a short lease (fast failover) costs a write per replica, not
per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from autogen_core import CancellationToken

from runner.decisions import AUTO, ActionApplier
from runner.drafts import Drafts
from runner.executor import RunExecutor
from runner.housekeeping import expire_credential_requests, requeue_orphaned_runs
from runner.keys import KeyDesk
from runner.llm import openai_verifier_factory
from runner.outcome import closing_events
from runner.pacing import ThreadPace
from runner.providers import ProviderTable
from runner.team_catalog import TeamCatalog
from runner.thread_replies import ThreadReplies
from runner.verifier import ClientFactory, Verifier
from runner.writes import RunLost
from store import Store
from store import events as ev
from store.actions import Decision, DecisionOutcome, may_decide
from store.changes import Guard, RunChange
from store.events import NewEvent
from store.feedback import FeedbackOutcome
from store.models import utcnow
from store.records import FINISHED_STATUSES, MAX_TASK_CHARS, Run, RunStatus
from store.settings import Settings
from store.work import RUN_READY, looks_like_id

log = logging.getLogger(__name__)

MAX_NOTE_CHARS = 500
LAPSE_MARGIN_S = 0.05  # look for orphans just after a lease lapses, not just before
ABORT_AT = 0.75  # of a lease without a renewal: this replica's runs are aborted


@dataclass(frozen=True)
class StartResult:
    run: Run
    created: bool
    queued_ahead: int


class CancelOutcome(StrEnum):
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"
    NOT_AUTHORISED = "not_authorised"
    ALREADY_FINISHED = "already_finished"


class RunManager:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        verifier_client_factory: ClientFactory | None = None,
        instance_id: str | None = None,
        poll_interval_s: float = 2.0,
        pace_to_threads: bool = False,  # where a publisher shows runs (`runner.pacing`)
    ) -> None:
        self.store = store
        self.settings = settings
        self.instance_id = instance_id or f"replica-{uuid.uuid4().hex[:8]}"
        factory = verifier_client_factory or openai_verifier_factory(settings)
        verifier = Verifier(factory, timeout_s=settings.verifier_timeout_s)
        self._actions = ActionApplier(store, settings)
        self.keys = KeyDesk(store)
        self.providers = ProviderTable.from_settings(settings)
        self.teams = TeamCatalog.from_settings(settings)  # TEAMS_DIR read once, shared
        self.drafts = Drafts()  # replies being written, for this process's publisher
        self.thread_replies = ThreadReplies(store, settings, self.decide)
        self._executor = RunExecutor(
            store,
            settings,
            verifier,
            self.instance_id,
            auto_apply=self._actions.auto_apply,
            teams=self.teams,
            drafts=self.drafts,
            answer_with_replies=self.thread_replies.answer_with_replies,
            pace=ThreadPace(store) if pace_to_threads else None,
        )
        self._poll_interval_s = poll_interval_s
        self._tasks: dict[str, tuple[asyncio.Task[None], CancellationToken]] = {}
        self._wake = asyncio.Event()
        self._hurried = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._lease_keeper: asyncio.Task[None] | None = None
        self._renewal: asyncio.Task[set[str]] | None = None  # the keeper's, on its way
        self._stopping = False
        store.subscribe(self._on_store_change)

    async def start(self) -> None:
        await self.recover()
        self._scheduler = asyncio.create_task(self._schedule(), name="scheduler")
        self._lease_keeper = asyncio.create_task(self._keep_leases(), name="lease-keeper")

    async def stop(self, *, grace_s: float = 30.0) -> None:
        """Take no new work; let running runs reach a saved state and hand them back."""
        self._stopping = True
        self._executor.draining = True
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        tasks = [task for task, _ in self._tasks.values()]
        try:
            await self._finish_turns(tasks, grace_s)
        finally:
            if self._renewal is not None:  # not cut off halfway (see `_keep_leases`)
                await asyncio.wait({self._renewal}, timeout=10)
            if self._lease_keeper is not None:
                self._lease_keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._lease_keeper

    async def _finish_turns(self, tasks: list[asyncio.Task[None]], grace_s: float) -> None:
        """Wait for the running turns (their leases still renewed), aborting them past
        the grace or at a hurry."""
        if tasks:
            # Every turn done, the grace over, or a hurry (a second Ctrl-C): whichever first.
            hurried = asyncio.ensure_future(self._hurried.wait())
            finished = asyncio.ensure_future(asyncio.wait(tasks))
            await asyncio.wait(
                {hurried, finished}, timeout=grace_s, return_when=asyncio.FIRST_COMPLETED
            )
            hurried.cancel()
            finished.cancel()
            pending = {task for task in tasks if not task.done()}
            # Past the grace: abort the turns through their tokens (which also aborts the
            # model calls); each run is handed back from its last saved turn.
            for _, token in list(self._tasks.values()):
                token.cancel()
            if pending:
                _, pending = await asyncio.wait(pending, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def hurry(self) -> None:
        """Cut `stop`'s grace short (a second Ctrl-C): the turns are aborted now."""
        self._hurried.set()

    @property
    def active_run_ids(self) -> set[str]:
        return set(self._tasks)

    def executes(self, run_id: str) -> bool:
        """Whether this replica is driving the run now."""
        return run_id in self._tasks

    def _on_store_change(self, topic: str, _run_id: str) -> None:
        if topic == RUN_READY:
            self._wake.set()

    async def start_run(
        self,
        *,
        workspace_id: str,
        channel_id: str,
        requester_id: str,
        task: str,
        idempotency_key: str | None = None,
        hold_s: float | None = None,
        team_name: str | None = None,
        thread_ts: str | None = None,
        message_keys: Sequence[str] = (),
    ) -> StartResult:
        """Create a queued run. With `hold_s`, no replica claims it until `release_hold`
        (or `discard`) is called, or the hold lapses: the front end first makes the place
        where the run will be shown, and a redelivered command finds the run already there.
        `team_name`: a team of `self.teams` (the front end checked it); None: the default.
        `thread_ts`: the run works in this existing thread (an @mention's), its root a reply."""
        task = task.strip()[:MAX_TASK_CHARS]
        running = await self.store.runs.count_by_status(RunStatus.RUNNING)
        busy = running >= self.settings.max_concurrent_runs
        ahead = await self.store.runs.count_by_status(RunStatus.QUEUED) if busy else 0
        started = {"task": task, "requester_id": requester_id, "queued_ahead": ahead}
        if team_name:
            started["team"] = team_name
        events = [NewEvent(ev.RUN_STARTED, started)]
        if busy:
            events.append(NewEvent(ev.INFO, {"text": self._queued_note(running, ahead)}))
        run, created = await self.store.runs.create(
            workspace_id=workspace_id,
            channel_id=channel_id,
            requester_id=requester_id,
            task=task,
            idempotency_key=idempotency_key,
            events=events,
            hold_until=utcnow() + timedelta(seconds=hold_s) if hold_s else None,
            team_name=team_name,
            thread_ts=thread_ts,
            inbound_keys=message_keys,
        )
        if not created:
            return StartResult(run, False, 0)
        log.info(
            "run created by %s in %s%s",
            requester_id,
            channel_id,
            " (queued behind others)" if busy else "",
            extra={"run_id": run.id},
        )
        return StartResult(run, True, ahead)

    def _queued_note(self, running: int, ahead: int) -> str:
        return (
            f"Queued: {running} run(s) are already going, {ahead} waiting ahead of this one; "
            "it starts when there is room (MAX_CONCURRENT_RUNS"
            f"={self.settings.max_concurrent_runs} per replica)."
        )

    async def release_hold(
        self, run_id: str, *, thread_ts: str | None, root_ts: str | None = None
    ) -> bool:
        return await self.store.runs.release_hold(run_id, thread_ts=thread_ts, root_ts=root_ts)

    async def discard(self, run_id: str) -> bool:
        return await self.store.runs.discard(run_id)

    async def cancel(self, run_id: str, *, user_id: str) -> CancelOutcome:
        run = await self.store.runs.get(run_id) if looks_like_id(run_id) else None
        if run is None:
            return CancelOutcome.NOT_FOUND
        if not may_decide(
            user_id, requester_id=run.requester_id, approvers=frozenset(self.settings.approvers)
        ):
            return CancelOutcome.NOT_AUTHORISED
        if run.status in FINISHED_STATUSES:
            return CancelOutcome.ALREADY_FINISHED
        outcome = f"Cancelled by <@{user_id}>."
        change = RunChange(status=RunStatus.CANCELLED, outcome=outcome, cancelled_by=user_id)
        events = closing_events(run, RunStatus.CANCELLED, outcome, cancelled_by=user_id)
        async with self.store.work(urgent=True) as work:
            ended = await work.write(run.id, change, Guard.unfinished(), events)
            if ended is not None:
                work.audit(
                    workspace_id=run.workspace_id,
                    actor_id=user_id,
                    action="run_cancelled",
                    subject=run_id,
                    run_id=run_id,
                )
        if ended is None:
            return CancelOutcome.ALREADY_FINISHED
        self._abort_here(run_id)
        return CancelOutcome.CANCELLED

    async def abandon_unshowable(self, run_id: str, *, reason: str) -> bool:
        """End a run Slack refuses to show (channel gone, app removed): nobody could follow,
        stop or approve it, so it must not go on spending tokens."""
        run = await self.store.runs.get(run_id)
        if run is None or run.status.finished:
            return False
        outcome = f"Stopped: Slack would not show this run ({reason})."
        ended = await self.store.runs.change(
            run.id,
            RunChange(status=RunStatus.FAILED, outcome=outcome),
            Guard.unfinished(),
            closing_events(run, RunStatus.FAILED, outcome, error=("unshowable", outcome)),
        )
        if ended is None:
            return False
        self._abort_here(run_id)
        return True

    def _abort_here(self, run_id: str) -> None:
        """Abort the run's turn if this replica is driving it (it ended elsewhere in code)."""
        local = self._tasks.get(run_id)
        if local is not None:
            local[1].cancel()

    async def decide(
        self,
        action_id: str,
        *,
        user_id: str,
        note: str | None = None,
        note_limit: int = MAX_NOTE_CHARS,
        heard_through: int = 0,
    ) -> Decision:
        """Decide an offered action (once, by whom may) and apply it. `note`: the reason a
        person gave, e.g. for denying a tool call, or their reply in the thread (then up to
        `note_limit` characters, and `heard_through` the last reply of the log it carries)."""
        if not looks_like_id(action_id):
            return Decision(DecisionOutcome.NOT_FOUND)
        decision = await self.store.actions.decide(
            action_id,
            user_id=user_id,
            approvers=frozenset(self.settings.approvers),
            note=note.strip()[:note_limit] if note and note.strip() else None,
            extra={"heard_through": heard_through} if heard_through else None,
        )
        if decision.outcome == DecisionOutcome.APPROVED and decision.action is not None:
            await self._actions.apply(decision.action, decided_by=user_id)
        return decision

    async def may_decide(self, action_id: str, *, user_id: str) -> Decision:
        """Whether `user_id` could decide the action now (nothing is decided)."""
        if not looks_like_id(action_id):
            return Decision(DecisionOutcome.NOT_FOUND)
        return await self.store.actions.check_decider(
            action_id, user_id=user_id, approvers=frozenset(self.settings.approvers)
        )

    async def feedback(self, value: str, *, user_id: str) -> FeedbackOutcome:
        """A click on a summary's feedback buttons: `value` is "good:<run id>" or
        "bad:<run id>"; counted once per person and run."""
        rating, _, run_id = value.partition(":")
        if not looks_like_id(run_id) or not user_id:
            return FeedbackOutcome.NOT_FOUND
        return await self.store.feedback.record(run_id, user_id=user_id, rating=rating)

    async def runs_for(self, *, workspace_id: str, user_id: str, limit: int = 10) -> list[Run]:
        return await self.store.runs.list_for_user(
            workspace_id=workspace_id, user_id=user_id, limit=limit
        )

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        housekeeping_at = 0.0
        while not self._stopping:
            try:
                if loop.time() >= housekeeping_at:
                    housekeeping_at = loop.time() + self._poll_interval_s
                    lapse_in = await self._housekeeping()
                    if lapse_in is not None:  # a dead replica's runs are taken up at once
                        housekeeping_at = min(housekeeping_at, loop.time() + lapse_in)
                await self._claim_available()
            except Exception:
                log.exception("scheduler pass failed; retrying")
            self._wake.clear()
            wait_s = min(self._poll_interval_s, max(0.0, housekeeping_at - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait_s)

    async def _claim_available(self) -> None:
        while len(self._tasks) < self.settings.max_concurrent_runs and not self._stopping:
            run = await self.store.runs.claim_next(
                owner=self.instance_id, lease_s=self.settings.run_lease_s
            )
            if run is None:
                return
            token = CancellationToken()
            task = asyncio.create_task(self._drive(run, token), name=f"run-{run.id}")
            self._tasks[run.id] = (task, token)

    async def _drive(self, run: Run, token: CancellationToken) -> None:
        try:
            await self._executor.execute(run, token)
        except RunLost:
            pass
        finally:
            # A quick re-claim (auto-applied action) may already have put a new task here.
            if self._tasks.get(run.id, (None, None))[0] is asyncio.current_task():
                del self._tasks[run.id]
            self._wake.set()

    async def _keep_leases(self) -> None:
        """Every quarter of a lease, renew the leases of all the runs driven here in one
        write; abort a run whose renewal is refused (taken over or ended elsewhere). A
        failed or slow renewal is retried, not fatal (one database hiccup must not hand
        live runs to another replica), but only until three quarters of a lease have gone
        since the last renewal that went through was sent: then every run here is aborted,
        before its lease lapses and another replica may take it up. A renewal is waited
        for, never cancelled halfway: a statement cut off in the middle can leave its
        database connection unusable."""
        lease_s = self.settings.run_lease_s
        loop = asyncio.get_running_loop()
        renewed_at = sent = loop.time()
        driven: dict[str, tuple[asyncio.Task[None], CancellationToken]] = {}
        while True:
            deadline = renewed_at + lease_s * ABORT_AT
            await asyncio.sleep(max(0.0, min(lease_s / 4, deadline - loop.time())))
            if self._renewal is None:  # else the last one is still on its way: wait on
                driven, sent = dict(self._tasks), loop.time()
                self._renewal = asyncio.create_task(
                    self.store.runs.renew_leases(driven, owner=self.instance_id, lease_s=lease_s)
                )
            await asyncio.wait({self._renewal}, timeout=max(0.0, deadline - loop.time()))
            held: set[str] = set()
            if self._renewal.done():
                renewal, self._renewal = self._renewal, None
                try:
                    held = renewal.result()
                    renewed_at = sent
                except Exception as exc:  # retried while the lease has slack for it
                    log.warning("lease renewal failed (%s)", type(exc).__name__)
                    if loop.time() < deadline:
                        continue
            if not held and loop.time() >= deadline and driven:
                log.error("no lease renewal went through for most of a lease: runs aborted")
            for run_id, (task, token) in driven.items():
                if run_id not in held and self._tasks.get(run_id, (None,))[0] is task:
                    token.cancel()
            if not held:
                renewed_at = loop.time()  # nothing is held now: start afresh

    async def _housekeeping(self) -> float | None:
        """The periodic repairs; returns the seconds until another replica's lease on a
        running run lapses (if it is not renewed by then), when they are due again."""
        await expire_credential_requests(self.store, timeout_s=self.settings.credential_timeout_s)
        await self.recover()
        lapse = await self.store.runs.next_lapse(owner=self.instance_id)
        lapse_in = None if lapse is None else (lapse - utcnow()).total_seconds()
        # One lapsed already and still there: not one to wait for (the poll looks again).
        return lapse_in + LAPSE_MARGIN_S if lapse_in is not None and lapse_in > 0 else None

    async def recover(self) -> None:
        """Runs whose replica died resume from saved state; approved-but-unapplied actions
        are applied. Called at start-up and periodically (a dead peer's lease lapses)."""
        await requeue_orphaned_runs(
            self.store, running_here=set(self._tasks), lease_s=self.settings.run_lease_s
        )
        # A decision younger than a lease may still be being applied by its replica.
        decided_before = utcnow() - timedelta(seconds=self.settings.run_lease_s)
        for action in await self.store.actions.approved_unapplied(decided_before=decided_before):
            if not self._actions.applying(action.id):
                await self._actions.apply(action, decided_by=action.decided_by or AUTO)


__all__ = ["CancelOutcome", "RunManager", "StartResult"]
