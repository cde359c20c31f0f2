"""Runs, events, credential requests and offered actions as the runner uses them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from store import Store
from store.actions import ActionSpec, DecisionOutcome
from store.changes import ANY_RUN, Guard, Lease, RunChange
from store.crypto import Owner
from store.events import NewEvent
from store.key_requests import FulfilOutcome, KeyWanted
from store.models import utcnow
from store.records import ActionStatus, RequestStatus, RunStatus
from store.settings import Settings
from tests.db import add_event, audit_actions, undelivered


async def _run(store: Store, key: str | None = None):
    run, _ = await store.runs.create(
        workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t", idempotency_key=key
    )
    return run


async def _waiting_request(
    store: Store,
    *,
    expires_in: timedelta = timedelta(hours=1),
    status: RunStatus = RunStatus.WAITING_CREDENTIAL,
    provider: str = "openrouter",
):
    """A run in `status` with a pending key request of UREQ's (and its event)."""
    run = await _run(store)
    request = await store.requests.request(
        run,
        KeyWanted(provider, "LLM key"),
        expires_at=utcnow() + expires_in,
        guard=ANY_RUN,
        change=RunChange(status=status),
    )
    assert request is not None
    return run, request


async def _kinds_after_request(store: Store, run_id: str) -> list[str]:
    """Event kinds of the run after its first key request (and what came before it)."""
    events = await store.runs.events(run_id)
    asked = next(e.seq for e in events if e.kind == "credential_request")
    return [e.kind for e in events if e.seq > asked]


async def test_idempotency_key_returns_the_first_run(store: Store) -> None:
    first, created = await store.runs.create(
        workspace_id="T1", channel_id="C1", requester_id="U", task="a", idempotency_key="k1"
    )
    again, created_again = await store.runs.create(
        workspace_id="T1", channel_id="C1", requester_id="U", task="a", idempotency_key="k1"
    )
    assert created and not created_again and again.id == first.id


async def test_events_are_numbered_and_drained_in_order(store: Store) -> None:
    seen: list[tuple[str, str]] = []
    store.subscribe(lambda topic, run_id: seen.append((topic, run_id)))
    run = await _run(store)
    for index in range(3):
        await add_event(store, run.id, "info", {"i": index})
    events = await undelivered(store, run.id)
    assert [e.seq for e in events] == [1, 2, 3]
    assert await store.outbox.claim(run.id, owner="pub", lease_s=30)
    assert await store.outbox.delivered(run.id, 1, owner="pub", ref="1.0001")
    assert not await store.outbox.delivered(run.id, 1, owner="pub", ref="1.0001")  # once
    assert await store.outbox.pending() == [run.id]
    assert [e.seq for e in await undelivered(store, run.id)] == [2, 3]
    assert seen.count(("event", run.id)) == 3


async def test_claim_lease_and_orphan_detection(store: Store) -> None:
    run = await _run(store)
    claimed = await store.runs.claim_next(owner="replica-a", lease_s=30)
    assert claimed is not None and claimed.id == run.id and claimed.status == RunStatus.RUNNING
    assert await store.runs.claim_next(owner="replica-b", lease_s=30) is None
    assert run.id not in await store.runs.renew_leases([run.id], owner="replica-b", lease_s=30)
    assert await store.runs.orphaned() == []
    later = utcnow() + timedelta(seconds=60)
    assert [r.id for r in await store.runs.orphaned(now=later)] == [run.id]


async def test_change_is_compare_and_set(store: Store) -> None:
    run = await _run(store)
    queued = Guard.status_in([RunStatus.QUEUED])
    ok = await store.runs.change(
        run.id, RunChange(status=RunStatus.CANCELLED), queued, [NewEvent("finished", {})]
    )
    assert ok is not None and ok.events[0].kind == "finished"
    assert ok.run.status == RunStatus.CANCELLED
    lease = Lease("replica-a", utcnow() + timedelta(seconds=30))
    again = await store.runs.change(
        run.id, RunChange(status=RunStatus.RUNNING, lease=lease), queued
    )
    assert again is None
    final = await store.runs.get(run.id)
    assert final is not None and final.finished_at is not None


async def test_fulfilling_a_request_stores_the_key_and_requeues_the_run(store: Store) -> None:
    run, request = await _waiting_request(store)
    wrong = await store.requests.fulfil(request.id, user_id="UOTHER", secret="sk-x")
    assert wrong.outcome == FulfilOutcome.WRONG_USER
    done = await store.requests.fulfil(request.id, user_id="UREQ", secret="sk-ok")
    assert done.outcome == FulfilOutcome.STORED and done.run_resumed
    twice = await store.requests.fulfil(request.id, user_id="UREQ", secret="sk-2")
    assert twice.outcome == FulfilOutcome.ALREADY_RESOLVED
    resumed = await store.runs.get(run.id)
    # What the run is told on resuming is the runner's decision, made when it is claimed.
    assert resumed is not None and resumed.status == RunStatus.QUEUED
    assert resumed.resume_input is None
    assert await _kinds_after_request(store, run.id) == ["credential_received"]


async def test_expired_request_writes_nothing(store: Store) -> None:
    from store.crypto import Owner

    run, request = await _waiting_request(store, expires_in=timedelta(seconds=-1))
    result = await store.requests.fulfil(request.id, user_id="UREQ", secret="sk")
    assert result.outcome == FulfilOutcome.EXPIRED
    assert not await store.credentials.exists(Owner("T1", "UREQ", "openrouter"))
    assert await _kinds_after_request(store, run.id) == []
    assert [r.id for r in await store.requests.expired(now=utcnow())] == [request.id]
    expired = await store.requests.expire(
        request.id, run_id=run.id, guard=ANY_RUN, change=RunChange(), events=[]
    )
    assert expired and (await store.requests.get(request.id)).status == RequestStatus.EXPIRED


async def test_actions_single_use_and_fail_closed(store: Store) -> None:
    run = await _run(store)
    event, actions = await store.actions.offer(
        run.id,
        [ActionSpec("revise", "Revise", {"feedback": "fix"}), ActionSpec("stop", "Stop", {})],
        reason="wrong",
        guard=ANY_RUN,
        change=RunChange(status=RunStatus.WAITING_APPROVAL),
    )
    assert event.kind == "actions_offered" and len(event.payload["actions"]) == 2
    revise, stop = actions
    nobody = frozenset[str]()
    assert (
        await store.actions.decide(revise.id, user_id="USTRANGER", approvers=nobody)
    ).outcome == (DecisionOutcome.NOT_AUTHORISED)
    assert (await store.actions.decide(revise.id, user_id="", approvers=nobody)).outcome == (
        DecisionOutcome.NOT_AUTHORISED
    )
    approved = await store.actions.decide(
        revise.id, user_id="UAPPROVER", approvers=frozenset({"UAPPROVER"})
    )
    assert approved.outcome == DecisionOutcome.APPROVED and approved.action is not None
    assert approved.action.decided_by == "UAPPROVER"
    assert (await store.actions.decide(revise.id, user_id="UREQ", approvers=nobody)).outcome == (
        DecisionOutcome.ALREADY_DECIDED
    )
    sibling = await store.actions.get(stop.id)
    assert sibling is not None and sibling.status == ActionStatus.SUPERSEDED
    assert (await store.actions.decide(stop.id, user_id="UREQ", approvers=nobody)).outcome == (
        DecisionOutcome.ALREADY_DECIDED
    )
    async with store.work() as work:
        assert await store.actions.mark_applied_in(work, revise.id)
    audit = await audit_actions(store, "T1")
    assert audit.count("action_decided") == 1


async def test_finishing_a_run_closes_its_waits_in_the_same_transaction(store: Store) -> None:
    run, request = await _waiting_request(
        store, status=RunStatus.WAITING_APPROVAL, provider="github"
    )
    _, actions = await store.actions.offer(
        run.id, [ActionSpec("continue", "Go", {})], reason="x", guard=ANY_RUN, change=RunChange()
    )
    assert await store.runs.change(run.id, RunChange(status=RunStatus.CANCELLED))
    closed = await store.requests.get(request.id)
    assert closed is not None and closed.status == RequestStatus.CANCELLED
    assert (await store.actions.get(actions[0].id)).status == ActionStatus.SUPERSEDED
    late = await store.requests.fulfil(request.id, user_id="UREQ", secret="s")
    assert late.outcome == FulfilOutcome.ALREADY_RESOLVED


async def _held_run(store: Store, *, for_s: float):
    run, _ = await store.runs.create(
        workspace_id="T1",
        channel_id="C1",
        requester_id="UREQ",
        task="t",
        hold_until=utcnow() + timedelta(seconds=for_s),
    )
    return run


async def test_a_held_run_is_not_claimed_until_released(store: Store) -> None:
    run = await _held_run(store, for_s=60)
    assert run.awaiting_front_end(utcnow())
    assert await store.runs.claim_next(owner="replica-a", lease_s=30) is None
    assert await store.runs.release_hold(run.id, thread_ts="1.0001")
    released = await store.runs.get(run.id)
    assert released.thread_ts == "1.0001" and not released.awaiting_front_end(utcnow())
    claimed = await store.runs.claim_next(owner="replica-a", lease_s=30)
    assert claimed is not None and claimed.id == run.id


async def test_a_lapsed_hold_lets_the_run_go_and_the_first_thread_wins(store: Store) -> None:
    run = await _held_run(store, for_s=-1)
    assert not run.awaiting_front_end(utcnow())
    claimed = await store.runs.claim_next(owner="replica-a", lease_s=30)
    assert claimed is not None and claimed.thread_ts is None
    # The publisher posts a root of its own first; the front end's late one is refused
    # and the replica's lease is left alone.
    assert await store.runs.attach_thread(run.id, "2.0002")
    assert not await store.runs.release_hold(run.id, thread_ts="3.0003")
    after = await store.runs.get(run.id)
    assert after.thread_ts == "2.0002" and after.lease_owner == "replica-a"
    assert after.status == RunStatus.RUNNING
    assert not await store.runs.attach_thread(run.id, "4.0004")


async def test_skip_rest_marks_a_runs_events_handled(store: Store) -> None:
    run = await _run(store)
    other = await _run(store)
    for target in (run, other):
        await add_event(store, target.id, "info", {})
    await store.outbox.skip_rest(run.id)
    assert await undelivered(store, run.id) == []
    assert await store.outbox.shown(run.id, 1) is None  # handled, never shown
    assert await store.outbox.pending() == [other.id]


async def test_the_same_submission_again_is_a_success_not_an_error(store: Store) -> None:
    """A Slack retry or a double submit of the modal carries the same key: it worked."""
    run, request = await _waiting_request(store)
    first = await store.requests.fulfil(request.id, user_id="UREQ", secret="sk-same-key-1")
    again = await store.requests.fulfil(request.id, user_id="UREQ", secret="sk-same-key-1")
    assert first.outcome == again.outcome == FulfilOutcome.STORED
    assert first.run_resumed and not again.run_resumed
    assert await _kinds_after_request(store, run.id) == ["credential_received"]


async def test_concurrent_submissions_store_one_key_and_one_event(
    settings: Settings, store: Store
) -> None:
    """Two replicas receive the submission at once (PostgreSQL: real concurrency)."""
    other = await Store.open(settings)
    try:
        for attempt in range(5):
            run, request = await _waiting_request(store)
            results = await asyncio.gather(
                store.requests.fulfil(request.id, user_id="UREQ", secret=f"sk-key-{attempt}"),
                other.requests.fulfil(request.id, user_id="UREQ", secret=f"sk-key-{attempt}"),
            )
            assert {r.outcome for r in results} == {FulfilOutcome.STORED}
            assert sum(r.run_resumed for r in results) == 1
            assert await _kinds_after_request(store, run.id) == ["credential_received"]
        owner = Owner("T1", "UREQ", "openrouter")
        assert await store.credentials.reveal(owner, actor_id="test") == "sk-key-4"
    finally:
        await other.close()


async def test_a_key_submitted_while_the_run_is_stopped_does_not_deadlock(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The submission touches the key request and then the run; a stop touches the run and
    then (closing its waits) the request. Both must lock the run first, or PostgreSQL
    aborts one of them as a deadlock."""
    run, request = await _waiting_request(store)
    real_store_in = store.credentials.store_in
    inside = asyncio.Event()

    async def slow_store_in(session: object, owner: Owner, secret: str) -> None:
        inside.set()
        await asyncio.sleep(0.2)  # the stop arrives while the submission is half done
        await real_store_in(session, owner, secret)

    monkeypatch.setattr(store.credentials, "store_in", slow_store_in)
    submission = asyncio.create_task(
        store.requests.fulfil(request.id, user_id="UREQ", secret="sk-in-flight")
    )
    await inside.wait()
    stopped = await store.runs.change(
        run.id, RunChange(status=RunStatus.CANCELLED), Guard.unfinished()
    )
    fulfilled = await submission
    assert fulfilled.outcome == FulfilOutcome.STORED
    assert stopped is not None and stopped.run.status == RunStatus.CANCELLED
    kinds = await _kinds_after_request(store, run.id)
    assert kinds == ["credential_received"]


async def test_a_key_submitted_while_its_request_message_is_recorded_does_not_deadlock(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The submission holds the run's lock while the publisher records the key request's
    message (an insert that references the run): that lock must not block such inserts."""
    run, request = await _waiting_request(store)
    asked = (await store.runs.events(run.id))[-1]
    real_store_in = store.credentials.store_in
    inside = asyncio.Event()

    async def slow_store_in(session: object, owner: Owner, secret: str) -> None:
        inside.set()
        await asyncio.sleep(0.2)  # the publisher records its post meanwhile
        await real_store_in(session, owner, secret)

    monkeypatch.setattr(store.credentials, "store_in", slow_store_in)
    assert await store.outbox.claim(run.id, owner="publisher", lease_s=30)
    submission = asyncio.create_task(
        store.requests.fulfil(request.id, user_id="UREQ", secret="sk-in-flight")
    )
    await inside.wait()
    recorded = await store.outbox.delivered(
        run.id, asked.seq, owner="publisher", ref="1.0002", opens=f"request:{request.id}"
    )
    fulfilled = await submission
    assert recorded and fulfilled.outcome == FulfilOutcome.STORED
    assert (await store.outbox.prompt(run.id, f"request:{request.id}")).ref == "1.0002"
