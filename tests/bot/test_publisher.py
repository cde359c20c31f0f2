"""The publisher against the Slack emulator: restart catch-up, bounded retries, no repeats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import event

import store.outbox as outbox_module
from bot.publisher import Publisher
from runner.outcome import closing_events
from store import Store
from store import events as ev
from store.changes import RunChange
from store.events import NewEvent
from store.models import RunEventRow, utcnow
from store.records import RunEvent, RunStatus
from store.settings import Settings, load_settings
from tests.db import add_event, parts_done, undelivered
from tests.fakes.slack_api import SlackApiEmulator


async def _run_with_thread(store: Store, slack: SlackApiEmulator, client: AsyncWebClient) -> str:
    root = await client.chat_postMessage(channel="C1", text="root")
    run, _ = await store.runs.create(
        workspace_id="T1",
        channel_id="C1",
        requester_id="U1",
        task="t",
        thread_ts=root["ts"],
        events=[NewEvent(ev.RUN_STARTED, {"task": "t", "requester_id": "U1", "queued_ahead": 0})],
    )
    return run.id


Emulated = tuple[Store, SlackApiEmulator, AsyncWebClient]
Threaded = tuple[Store, SlackApiEmulator, AsyncWebClient, str]


@pytest.fixture
async def emulated(tmp_path: Path, secret_key: str) -> AsyncIterator[Emulated]:
    """A SQLite store, the Slack emulator and a client of it; the store is closed after."""
    store = await Store.open(
        load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/pub.db", server_secret_key=secret_key
        )
    )
    try:
        async with SlackApiEmulator() as slack:
            yield store, slack, AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    finally:
        await store.close()


@pytest.fixture
async def threaded(emulated: Emulated) -> Threaded:
    """The same, with a run whose thread (its root message in C1) is already in Slack."""
    store, slack, client = emulated
    return store, slack, client, await _run_with_thread(store, slack, client)


async def test_unposted_events_are_posted_after_a_restart_once(threaded: Threaded) -> None:
    store, slack, client, run_id = threaded
    for index in range(3):
        await add_event(store, run_id, ev.INFO, {"text": f"step {index}"})
    first = Publisher(store, client)
    await first.drain()
    await add_event(store, run_id, ev.INFO, {"text": "after the crash"})
    # A new publisher (a restarted process) posts only what was not posted.
    second = Publisher(store, client)
    await second.drain()
    await second.drain()
    run = await store.runs.get(run_id)
    texts = [m["text"] for m in slack.thread("C1", run.thread_ts)]
    assert texts == ["step 0", "step 1", "step 2", "after the crash"]
    assert all([await store.outbox.shown(run_id, e.seq) for e in await store.runs.events(run_id)])
    assert slack.problems == []


async def test_server_errors_are_retried_with_backoff(threaded: Threaded) -> None:
    store, slack, client, run_id = threaded
    await add_event(store, run_id, ev.INFO, {"text": "survives 500s"})
    slack.fail("chat.postMessage", status=500, times=2)
    await Publisher(store, client, base_delay_s=0.01).drain()
    run = await store.runs.get(run_id)
    assert [m["text"] for m in slack.thread("C1", run.thread_ts)] == ["survives 500s"]
    assert [c.status for c in slack.calls_to("chat.postMessage")][-3:] == [500, 500, 200]


async def test_retries_are_bounded_and_nothing_is_lost(threaded: Threaded) -> None:
    store, slack, client, run_id = threaded
    await add_event(store, run_id, ev.INFO, {"text": "first"})
    await add_event(store, run_id, ev.INFO, {"text": "second"})
    slack.fail("chat.postMessage", status=503, times=3)
    publisher = Publisher(store, client, max_attempts=3, base_delay_s=0.01)
    await publisher.drain()
    assert [e.kind for e in await undelivered(store, run_id)] == [ev.INFO, ev.INFO]
    await publisher.drain()
    run = await store.runs.get(run_id)
    assert [m["text"] for m in slack.thread("C1", run.thread_ts)] == ["first", "second"]


async def test_a_refused_event_is_skipped_not_blocking(threaded: Threaded) -> None:
    store, slack, client, run_id = threaded
    await add_event(store, run_id, ev.INFO, {"text": "refused"})
    await add_event(store, run_id, ev.INFO, {"text": "next"})
    slack.fail("chat.postMessage", status=200, times=1, error="msg_too_long")
    await Publisher(store, client).drain()
    assert await undelivered(store, run_id) == []
    run = await store.runs.get(run_id)
    assert [m["text"] for m in slack.thread("C1", run.thread_ts)] == ["next"]


@pytest.mark.parametrize("error", ["not_in_channel", "is_archived", "channel_not_found"])
async def test_a_channel_slack_no_longer_posts_to_ends_the_run(
    threaded: Threaded, error: str
) -> None:
    """The app was removed from the channel (or it was archived) mid-run: the run is ended
    rather than spending the user's key on work nobody can see."""
    store, slack, client, run_id = threaded
    abandoned: list[tuple[str, str]] = []

    async def on_unshowable(run: str, reason: str) -> None:
        abandoned.append((run, reason))

    await add_event(store, run_id, ev.INFO, {"text": "after the removal"})
    await add_event(store, run_id, ev.INFO, {"text": "and more"})
    slack.fail("chat.postMessage", status=200, times=1, error=error)
    publisher = Publisher(store, client, on_unshowable=on_unshowable)
    await publisher.drain()
    assert abandoned == [(run_id, error)]
    assert await undelivered(store, run_id) == []
    await publisher.drain()
    assert len(slack.calls_to("chat.postMessage")) == 2  # the root, then the refused post


async def test_the_final_root_update_is_retried_after_an_outage(threaded: Threaded) -> None:
    """Slack unavailable while the run ends: the summary waits, so the root never stays
    "Running" with a live Stop button."""
    store, slack, client, run_id = threaded
    publisher = Publisher(store, client, max_attempts=3, base_delay_s=0.01)
    await publisher.drain()  # the run as it started
    run = await store.runs.get(run_id)
    await store.runs.change(
        run_id,
        RunChange(status=RunStatus.COMPLETED, outcome="done"),
        events=closing_events(run, RunStatus.COMPLETED, "done"),
    )
    slack.fail("chat.update", status=503, retry_after=None, times=3)
    await publisher.drain()
    assert [e.kind for e in await undelivered(store, run_id)] == [ev.FINISHED]
    await publisher.drain()
    root = slack.channel_messages("C1")[0]
    assert "Completed" in json.dumps(root.get("blocks")) + root.get("text", "")
    thread = slack.thread("C1", root["ts"])
    assert len([m for m in thread if "Run finished" in m["text"]]) == 1


async def _orphaned_held_run(store: Store, *, hold_s: float) -> str:
    """A run created by /autogen whose root message was never attached: the process died
    between creating the run and posting its root, or Slack kept the post waiting."""
    run, _ = await store.runs.create(
        workspace_id="T1",
        channel_id="C1",
        requester_id="U1",
        task="Summarise the incident",
        events=[NewEvent(ev.RUN_STARTED, {"task": "t", "requester_id": "U1", "queued_ahead": 0})],
        hold_until=utcnow() + timedelta(seconds=hold_s),
    )
    await add_event(store, run.id, ev.INFO, {"text": "working"})
    return run.id


async def test_a_run_whose_root_never_came_gets_one_after_the_hold(emulated: Emulated) -> None:
    store, slack, client = emulated
    held = await _orphaned_held_run(store, hold_s=60)
    await Publisher(store, client).drain()
    assert slack.calls_to("chat.postMessage") == []  # the front end may still post it

    run_id = await _orphaned_held_run(store, hold_s=-1)
    await Publisher(store, client).drain()
    run = await store.runs.get(run_id)
    (root,) = slack.channel_messages("C1")
    assert run.thread_ts == root["ts"] and "Summarise the incident" in root["text"]
    assert [m["text"] for m in slack.thread("C1", root["ts"])] == ["working"]
    assert await undelivered(store, run_id) == []
    # The front end's late root loses: the run keeps the thread it has.
    assert not await store.runs.release_hold(run_id, thread_ts="9.9")
    assert (await store.runs.get(run_id)).thread_ts == root["ts"]
    assert (await store.runs.get(held)).thread_ts is None
    assert slack.problems == []


async def test_a_root_attached_meanwhile_makes_the_publisher_delete_its_copy(
    emulated: Emulated,
) -> None:
    store, slack, client = emulated
    run_id = await _orphaned_held_run(store, hold_s=-1)
    front_end_root = await client.chat_postMessage(channel="C1", text="root by /autogen")
    real_attach = store.runs.attach_thread

    async def front_end_wins_the_race(run: str, ts: str) -> bool:
        await store.runs.release_hold(run, thread_ts=front_end_root["ts"])
        return await real_attach(run, ts)

    store.runs.attach_thread = front_end_wins_the_race  # type: ignore[method-assign]
    await Publisher(store, client).drain()
    (root,) = slack.channel_messages("C1")
    assert root["ts"] == front_end_root["ts"]
    assert (await store.runs.get(run_id)).thread_ts == root["ts"]
    (deleted,) = slack.deleted
    assert deleted["ts"] != root["ts"] and "Summarise the incident" in deleted["text"]
    assert [m["text"] for m in slack.thread("C1", root["ts"])] == ["working"]


async def test_a_run_slack_will_not_show_is_ended_and_not_retried(emulated: Emulated) -> None:
    store, slack, client = emulated
    abandoned: list[tuple[str, str]] = []

    async def on_unshowable(run_id: str, reason: str) -> None:
        abandoned.append((run_id, reason))

    run_id = await _orphaned_held_run(store, hold_s=-1)
    slack.fail("chat.postMessage", status=200, times=1, error="channel_not_found")
    publisher = Publisher(store, client, on_unshowable=on_unshowable)
    await publisher.drain()
    assert abandoned == [(run_id, "channel_not_found")]
    assert await undelivered(store, run_id) == []
    await publisher.drain()
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_two_replicas_publishing_one_database_post_each_event_once(
    settings: Settings,
) -> None:
    """Every replica runs a publisher; the publishing claim lets one post a run's events."""
    first, second = await Store.open(settings), await Store.open(settings)
    async with SlackApiEmulator() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        run_id = await _run_with_thread(first, slack, client)
        replicas = [
            Publisher(first, client, owner="replica-a"),
            Publisher(second, client, owner="replica-b"),
        ]
        for batch in range(4):
            for index in range(5):
                await add_event(first, run_id, ev.INFO, {"text": f"{batch}.{index}"})
            await asyncio.gather(*(p.drain() for p in replicas * 2))
        await asyncio.gather(*(p.drain() for p in replicas))
        run = await first.runs.get(run_id)
        texts = [m["text"] for m in slack.thread("C1", run.thread_ts)]
        assert texts == [f"{b}.{i}" for b in range(4) for i in range(5)]
        assert await undelivered(first, run_id) == []
    await first.close()
    await second.close()


async def test_a_replica_that_lost_its_claim_posts_nothing(threaded: Threaded) -> None:
    store, slack, client, run_id = threaded
    await add_event(store, run_id, ev.INFO, {"text": "once"})
    assert await store.outbox.claim(run_id, owner="replica-b", lease_s=60)
    await Publisher(store, client, owner="replica-a").drain()
    assert slack.calls_to("chat.postMessage")[1:] == []  # only the root so far
    await store.outbox.release(run_id, owner="replica-b")
    await Publisher(store, client, owner="replica-a").drain()
    run = await store.runs.get(run_id)
    assert [m["text"] for m in slack.thread("C1", run.thread_ts)] == ["once"]


async def test_a_long_message_resumes_after_the_last_part_that_went_out(threaded: Threaded) -> None:
    store, slack, client, run_id = threaded
    paragraphs = [f"Paragraph {n}. " + "word " * 500 for n in range(1, 4)]
    await add_event(
        store,
        run_id,
        ev.AGENT_MESSAGE,
        {"source": "worker", "content": "\n\n".join(paragraphs), "turn": 1},
    )
    publisher = Publisher(store, client, max_attempts=2, base_delay_s=0.01)
    original = slack._handlers["chat.postMessage"]

    def outage_after_the_first_part(params: dict) -> dict:
        answer = original(params)
        if params.get("thread_ts"):
            slack.fail("chat.postMessage", status=500, times=2)  # both tries of part 2
        return answer

    slack._handlers["chat.postMessage"] = outage_after_the_first_part
    await publisher.drain()
    (event,) = await undelivered(store, run_id)
    assert event.kind == ev.AGENT_MESSAGE and await parts_done(store, run_id) == 1
    slack._handlers["chat.postMessage"] = original
    await publisher.drain()
    run = await store.runs.get(run_id)
    parts = [m["text"] for m in slack.thread("C1", run.thread_ts)]
    assert [("Paragraph 1" in p, "Paragraph 2" in p, "Paragraph 3" in p) for p in parts] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    assert await undelivered(store, run_id) == []


async def test_a_long_retry_after_ends_the_pass_and_is_honoured(threaded: Threaded) -> None:
    store, slack, client, run_id = threaded
    await add_event(store, run_id, ev.INFO, {"text": "after the pause"})
    slack.fail("chat.postMessage", status=429, retry_after=30, times=1)
    publisher = Publisher(store, client, max_delay_s=0.2)
    await publisher.drain()
    # The pass ended instead of waiting 30 s: the event is still unposted, asked for once.
    assert [e.payload["text"] for e in await undelivered(store, run_id)] == ["after the pause"]
    calls = len(slack.calls_to("chat.postMessage"))
    assert [c.status for c in slack.calls_to("chat.postMessage")][1:] == [429]
    await publisher.drain()  # well within the 30 s Slack asked for: Slack is not called again
    assert len(slack.calls_to("chat.postMessage")) == calls
    # The 30 s pause ends (as if the time had passed): the next pass posts the event.
    # Slack's 30 s is what is kept, not the 0.2 s this publisher would wait in a pass.
    assert publisher._not_before[run_id] > asyncio.get_running_loop().time() + 20
    publisher._not_before.pop(run_id)
    await publisher.drain()
    run = await store.runs.get(run_id)
    assert [m["text"] for m in slack.thread("C1", run.thread_ts)] == ["after the pause"]
    assert await undelivered(store, run_id) == []


async def test_stopping_mid_call_does_not_post_the_event_twice(threaded: Threaded) -> None:
    store, slack, client, run_id = threaded
    slack.slow("chat.postMessage", 0.6)
    publisher = Publisher(store, client)
    await publisher.start()
    await add_event(store, run_id, ev.INFO, {"text": "in flight at shutdown"})
    # The post is on its way to Slack (held there) when the publisher is told to stop.
    await slack.wait_for(lambda s: s.in_flight.get("chat.postMessage"))
    await publisher.stop(grace_s=5)
    # Slack has answered the held call (the post went out, whoever was waiting for it).
    await slack.wait_for(lambda s: s.in_flight["chat.postMessage"] == 0)
    run = await store.runs.get(run_id)
    assert [m["text"] for m in slack.thread("C1", run.thread_ts)] == ["in flight at shutdown"]
    assert await undelivered(store, run_id) == []


async def test_posting_message_n_costs_what_message_5_did(
    threaded: Threaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 events of one run, each posted by its own pass (as the publisher wakes per
    event): the statements a pass runs, the reads among them and the event rows it loads
    do not grow with the run."""
    store, slack, client, run_id = threaded
    statements: list[str] = []
    loaded: list[int] = []
    real_to_event = outbox_module.to_event

    def counted_to_event(row: RunEventRow) -> RunEvent:
        loaded.append(row.seq)
        return real_to_event(row)

    monkeypatch.setattr(outbox_module, "to_event", counted_to_event)

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    publisher = Publisher(store, client)
    await publisher.drain()  # the run's start
    per_pass: list[tuple[int, int, int]] = []

    async def one_pass() -> None:
        statements.clear()
        loaded.clear()
        await publisher.drain()
        per_pass.append((len(statements), statements.count("SELECT"), len(loaded)))

    try:
        for number in range(150):
            said = {"source": "worker", "content": f"step {number}", "turn": 1}
            agent = await add_event(store, run_id, ev.AGENT_MESSAGE, said)
            await one_pass()
            judged = {"agent_seq": agent.seq, "verdict": "pass", "reason": "ok"}
            await add_event(store, run_id, ev.VERIFIER_RESULT, judged)
            await one_pass()
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", count)
    assert len(per_pass) == 300
    assert await undelivered(store, run_id) == []
    # Message 300 (a verdict) against message 6 (a verdict); 299 against 5 (agent messages).
    print("statements, reads, event rows per pass:", per_pass[4:6], per_pass[298:])
    assert per_pass[299] == per_pass[5], per_pass[::50]
    assert per_pass[298] == per_pass[4], per_pass[::50]
    assert len(set(per_pass[4:])) <= 2  # one figure for agent messages, one for verdicts
    assert max(rows for *_, rows in per_pass) <= 2  # the event itself, the judged message
    run = await store.runs.get(run_id)
    thread = slack.thread("C1", run.thread_ts)
    assert len(thread) == 150 and all("Verifier: pass" in json.dumps(m["blocks"]) for m in thread)


async def test_a_replica_that_stalled_past_its_claim_posts_nothing_it_read(
    threaded: Threaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica A reads the backlog, then stalls longer than its claim (a paused VM, a
    blocked loop); B takes over and posts it all. When A wakes it must not post again."""
    store, slack, client, run_id = threaded
    await Publisher(store, client).drain()  # the run's start: A's first event needs a post
    for text in ("m0", "m1", "m2"):
        await add_event(store, run_id, ev.INFO, {"text": text})
    stalled, wake = asyncio.Event(), asyncio.Event()
    real_backlog = store.outbox.backlog

    async def backlog_then_stall(run: str):
        read = await real_backlog(run)
        if not stalled.is_set():
            stalled.set()
            await wake.wait()
        return read

    monkeypatch.setattr(store.outbox, "backlog", backlog_then_stall)
    replica_a = Publisher(store, client, owner="replica-a", claim_s=0.2)
    replica_b = Publisher(store, client, owner="replica-b")
    a_pass = asyncio.create_task(replica_a.publish_run(run_id))
    await stalled.wait()
    await asyncio.sleep(0.3)  # A's claim lapses while it is stalled
    await replica_b.publish_run(run_id)
    wake.set()
    await a_pass
    run = await store.runs.get(run_id)
    assert [m["text"] for m in slack.thread("C1", run.thread_ts)] == ["m0", "m1", "m2"]


async def test_one_runs_failing_pass_does_not_stop_the_others(
    emulated: Emulated, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store, slack, client = emulated
    broken = await _run_with_thread(store, slack, client)
    working = await _run_with_thread(store, slack, client)
    await add_event(store, working, ev.INFO, {"text": "still posted"})
    publisher = Publisher(store, client)
    real = publisher.publish_run

    async def fails_for_one(run_id: str) -> None:
        if run_id == broken:
            raise OSError("the database went away for this one")
        await real(run_id)

    monkeypatch.setattr(publisher, "publish_run", fails_for_one)
    await publisher.drain()
    run = await store.runs.get(working)
    assert [m["text"] for m in slack.thread("C1", run.thread_ts)] == ["still posted"]
    (failure,) = [r for r in caplog.records if r.getMessage() == "publishing pass failed"]
    assert failure.run_id == broken
