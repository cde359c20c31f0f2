"""The publisher's runs kept apart: one run waiting on Slack holds up no other, a run another
replica posted leaves nothing behind here, and stop() waits for every pass, a follower's
included, even without start()."""

from __future__ import annotations

import asyncio

from bot.publisher import Publisher
from runner.drafts import Drafts
from runner.outcome import closing_events
from store import events as ev
from store.changes import RunChange
from store.records import RunStatus
from tests.bot.live_env import Env, streams_of, write
from tests.db import add_event, undelivered


def publisher_passes() -> list[asyncio.Task]:
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done()
        and t.get_coro().__qualname__ in ("Publisher._publish_in_turn", "Publisher._follow")
    ]


# -- one run waiting out a Retry-After holds up no other run's new events --------------------


async def test_a_run_waiting_out_a_retry_after_does_not_hold_up_another_runs_events(
    env: Env,
) -> None:
    # Slack's posting limit is per channel: a run in another channel is not held up by it.
    slow, other = await env.new_run(), await env.new_run(channel="C2")
    publisher = Publisher(env.store, env.client, poll_interval_s=0.05)
    await publisher.drain()  # both runs' starts (nothing to post)
    await publisher.start()
    try:
        # Slack asks `slow`'s post to wait 3 s (within max_delay_s: the pass waits it out).
        env.slack.fail("chat.postMessage", status=429, retry_after=3, times=1)
        await add_event(env.store, slow.id, ev.INFO, {"text": "after the pause"})
        await env.slack.wait_for(
            lambda s: any(c.status == 429 for c in s.calls_to("chat.postMessage")), timeout=5
        )
        # Now the other run (another channel, nothing wrong with it) has news.
        await add_event(env.store, other.id, ev.INFO, {"text": "the other run's news"})
        await env.slack.wait_for(lambda _: "the other run's news" in env.texts(other), timeout=1.5)
    finally:
        await publisher.stop(grace_s=10)
    assert env.texts(slow) == ["after the pause"]


# -- an event recorded while its run's pass is posting is shown without waiting for the poll --


async def test_an_event_recorded_during_its_runs_pass_is_shown_at_once(env: Env) -> None:
    run = await env.new_run()
    publisher = Publisher(env.store, env.client, poll_interval_s=30)  # the poll never helps
    await publisher.drain()
    await publisher.start()
    try:
        env.slack.slow("chat.postMessage", 0.5)
        await add_event(env.store, run.id, ev.INFO, {"text": "first"})
        await env.slack.wait_for(lambda s: s.in_flight.get("chat.postMessage"), timeout=5)
        # The pass read its backlog before this one: the loop must look again when it ends.
        await add_event(env.store, run.id, ev.INFO, {"text": "second"})
        await env.slack.wait_for(lambda _: env.texts(run) == ["first", "second"], timeout=5)
    finally:
        await publisher.stop(grace_s=5)


# -- per-run state of runs another replica posted is let go of -------------------------------


async def test_a_run_another_replica_finished_leaves_no_state_behind(env: Env) -> None:
    drafts = Drafts()
    run = await env.new_run()
    replica_a = Publisher(env.store, env.client, owner="replica-a", drafts=drafts)
    replica_b = Publisher(env.store, env.client, owner="replica-b")
    await replica_b.drain()  # the run's start

    # B is mid-pass (holds the claim) when A's loop, woken by the run's event, looks at it;
    # A's follower of the reply the run is writing here also finds B holding it.
    assert await env.store.outbox.claim(run.id, owner="replica-b", lease_s=60)
    await add_event(env.store, run.id, ev.INFO, {"text": "step"})
    await replica_a.drain()
    write(drafts, run, "Working")
    await asyncio.gather(*publisher_passes())
    drafts.close(run.id)
    await env.store.outbox.release(run.id, owner="replica-b")

    # B posts the rest, the run's end included; A never has anything of it to post again.
    current = await env.store.runs.get(run.id)
    assert current is not None
    await env.store.runs.change(
        run.id,
        RunChange(status=RunStatus.COMPLETED, outcome="done"),
        events=closing_events(current, RunStatus.COMPLETED, "done"),
    )
    await replica_b.drain()
    assert await undelivered(env.store, run.id) == []
    await replica_a.drain()
    assert await env.store.outbox.pending() == []

    left = {
        "_locks": run.id in replica_a._locks,
        "_follow_not_before": run.id in replica_a._follow_not_before,
        "_new_events": run.id in replica_a._new_events,
    }
    assert not any(left.values()), left


# -- stop() before start() waits for a follower mid-call -------------------------------------


async def test_stop_without_start_waits_for_a_follower_mid_call(env: Env) -> None:
    drafts = Drafts()
    run = await env.new_run()
    publisher = Publisher(env.store, env.client, drafts=drafts)
    await publisher.drain()  # the run's start; the loop is never started
    env.slack.slow("chat.startStream", 1.0)
    write(drafts, run, "Working on it")
    await env.slack.wait_for(lambda s: s.in_flight.get("chat.startStream"), timeout=5)
    follower = publisher._followers.get(run.id)
    try:
        await publisher.stop(grace_s=5)
        assert follower is not None and follower.done(), "a follower outlived stop()"
    finally:
        drafts.close(run.id)
        await asyncio.gather(*publisher_passes(), return_exceptions=True)
    assert streams_of(env.slack, run)
