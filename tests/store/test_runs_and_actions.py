"""Runs, events, credential requests and offered actions as the runner uses them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from store import Store
from store.actions import ActionSpec, DecisionOutcome
from store.credentials import FulfilOutcome
from store.crypto import Owner
from store.models import utcnow
from store.records import FRONT_END_HOLD, ActionStatus, RequestStatus, RunStatus
from store.settings import Settings


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
    """A run in `status` with a pending key request of UREQ's."""
    run = await _run(store)
    await store.runs.transition(run.id, status=status)
    request = await store.credentials.create_request(
        run_id=run.id,
        workspace_id="T1",
        user_id="UREQ",
        provider=provider,
        reason="LLM key",
        expires_at=utcnow() + expires_in,
    )
    return run, request


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
        await store.runs.append_event(run.id, "info", {"i": index})
    events = await store.runs.unposted_events(run.id)
    assert [e.seq for e in events] == [1, 2, 3]
    await store.runs.mark_posted(events[0].id, slack_ts="1.0001")
    assert await store.runs.runs_with_unposted_events() == [run.id]
    assert [e.seq for e in await store.runs.unposted_events(run.id)] == [2, 3]
    assert seen.count(("event", run.id)) == 3


async def test_claim_lease_and_orphan_detection(store: Store) -> None:
    run = await _run(store)
    claimed = await store.runs.claim_next(owner="replica-a", lease_s=30)
    assert claimed is not None and claimed.id == run.id and claimed.status == RunStatus.RUNNING
    assert await store.runs.claim_next(owner="replica-b", lease_s=30) is None
    assert await store.runs.renew_lease(run.id, owner="replica-b", lease_s=30) is False
    assert await store.runs.orphaned() == []
    later = utcnow() + timedelta(seconds=60)
    assert [r.id for r in await store.runs.orphaned(now=later)] == [run.id]


async def test_transition_is_compare_and_set(store: Store) -> None:
    run = await _run(store)
    ok = await store.runs.transition(
        run.id, expected=[RunStatus.QUEUED], status=RunStatus.CANCELLED, events=[("finished", {})]
    )
    assert ok and not isinstance(ok, bool) and ok[0].kind == "finished"
    again = await store.runs.transition(
        run.id, expected=[RunStatus.QUEUED], status=RunStatus.RUNNING
    )
    assert again is False
    final = await store.runs.get(run.id)
    assert final is not None and final.finished_at is not None


async def test_fulfilling_a_request_stores_the_key_and_requeues_the_run(store: Store) -> None:
    run, request = await _waiting_request(store)
    wrong = await store.credentials.fulfil(
        request.id, user_id="UOTHER", secret="sk-x", resume_input=""
    )
    assert wrong.outcome == FulfilOutcome.WRONG_USER
    done = await store.credentials.fulfil(
        request.id, user_id="UREQ", secret="sk-ok", resume_input="go"
    )
    assert done.outcome == FulfilOutcome.STORED and done.run_resumed
    twice = await store.credentials.fulfil(
        request.id, user_id="UREQ", secret="sk-2", resume_input="go"
    )
    assert twice.outcome == FulfilOutcome.ALREADY_RESOLVED
    resumed = await store.runs.get(run.id)
    assert (
        resumed is not None and resumed.status == RunStatus.QUEUED and resumed.resume_input == "go"
    )
    kinds = [e.kind for e in await store.runs.events(run.id)]
    assert kinds == ["credential_received"]


async def test_expired_request_writes_nothing(store: Store) -> None:
    from store.crypto import Owner

    run, request = await _waiting_request(store, expires_in=timedelta(seconds=-1))
    result = await store.credentials.fulfil(
        request.id, user_id="UREQ", secret="sk", resume_input=""
    )
    assert result.outcome == FulfilOutcome.EXPIRED
    assert not await store.credentials.exists(Owner("T1", "UREQ", "openrouter"))
    assert await store.runs.events(run.id) == []
    assert await store.credentials.resolve_request(request.id, RequestStatus.EXPIRED)


async def test_actions_single_use_and_fail_closed(store: Store) -> None:
    run = await _run(store)
    event, actions = await store.actions.offer(
        run_id=run.id,
        specs=[ActionSpec("revise", "Revise", {"feedback": "fix"}), ActionSpec("stop", "Stop", {})],
        event_payload={"reason": "wrong"},
        status=RunStatus.WAITING_APPROVAL,
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
    assert await store.actions.mark_applied(revise.id)
    audit = [e.action for e in await store.audit.list(workspace_id="T1")]
    assert audit.count("action_decided") == 1


async def test_finishing_a_run_closes_its_waits_in_the_same_transaction(store: Store) -> None:
    run, request = await _waiting_request(
        store, status=RunStatus.WAITING_APPROVAL, provider="github"
    )
    _, actions = await store.actions.offer(
        run_id=run.id, specs=[ActionSpec("continue", "Go", {})], event_payload={"reason": "x"}
    )
    assert await store.runs.transition(run.id, status=RunStatus.CANCELLED)
    closed = await store.credentials.get_request(request.id)
    assert closed is not None and closed.status == RequestStatus.CANCELLED
    assert (await store.actions.get(actions[0].id)).status == ActionStatus.SUPERSEDED
    late = await store.credentials.fulfil(request.id, user_id="UREQ", secret="s", resume_input="")
    assert late.outcome == FulfilOutcome.ALREADY_RESOLVED


async def _held_run(store: Store, *, for_s: float):
    run, _ = await store.runs.create(
        workspace_id="T1",
        channel_id="C1",
        requester_id="UREQ",
        task="t",
        hold=(FRONT_END_HOLD, utcnow() + timedelta(seconds=for_s)),
    )
    return run


async def test_a_held_run_is_not_claimed_until_released(store: Store) -> None:
    run = await _held_run(store, for_s=60)
    assert run.awaiting_front_end(utcnow())
    assert await store.runs.claim_next(owner="replica-a", lease_s=30) is None
    assert await store.runs.release_hold(run.id, owner=FRONT_END_HOLD, thread_ts="1.0001")
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
    assert not await store.runs.release_hold(run.id, owner=FRONT_END_HOLD, thread_ts="3.0003")
    after = await store.runs.get(run.id)
    assert after.thread_ts == "2.0002" and after.lease_owner == "replica-a"
    assert after.status == RunStatus.RUNNING
    assert not await store.runs.attach_thread(run.id, "4.0004")


async def test_skip_unposted_marks_a_runs_events_handled(store: Store) -> None:
    run = await _run(store)
    other = await _run(store)
    for target in (run, other):
        await store.runs.append_event(target.id, "info", {})
    assert await store.runs.skip_unposted(run.id) == 1
    assert await store.runs.unposted_events(run.id) == []
    assert [e.slack_ts for e in await store.runs.events(run.id)] == [None]
    assert await store.runs.runs_with_unposted_events() == [other.id]


async def test_the_same_submission_again_is_a_success_not_an_error(store: Store) -> None:
    """A Slack retry or a double submit of the modal carries the same key: it worked."""
    run, request = await _waiting_request(store)
    first = await store.credentials.fulfil(
        request.id, user_id="UREQ", secret="sk-same-key-1", resume_input="go"
    )
    again = await store.credentials.fulfil(
        request.id, user_id="UREQ", secret="sk-same-key-1", resume_input="go"
    )
    assert first.outcome == again.outcome == FulfilOutcome.STORED
    assert first.run_resumed and not again.run_resumed
    kinds = [e.kind for e in await store.runs.events(run.id)]
    assert kinds == ["credential_received"]


async def test_concurrent_submissions_store_one_key_and_one_event(
    settings: Settings, store: Store
) -> None:
    """Two replicas receive the submission at once (PostgreSQL: real concurrency)."""
    other = await Store.open(settings)
    try:
        for attempt in range(5):
            run, request = await _waiting_request(store)
            results = await asyncio.gather(
                store.credentials.fulfil(
                    request.id, user_id="UREQ", secret=f"sk-key-{attempt}", resume_input="go"
                ),
                other.credentials.fulfil(
                    request.id, user_id="UREQ", secret=f"sk-key-{attempt}", resume_input="go"
                ),
            )
            assert {r.outcome for r in results} == {FulfilOutcome.STORED}
            assert sum(r.run_resumed for r in results) == 1
            kinds = [e.kind for e in await store.runs.events(run.id)]
            assert kinds == ["credential_received"]
        owner = Owner("T1", "UREQ", "openrouter")
        assert await store.credentials.reveal(owner, actor_id="test") == "sk-key-4"
    finally:
        await other.close()
