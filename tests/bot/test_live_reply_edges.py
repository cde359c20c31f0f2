"""Live replies at the edges: the publisher's loop and slots while replies are followed,
shutdown mid-reply, secrets a run let go of, words that look like the start of a key,
markup-heavy and broadcast-mentioning text, another replica holding the run, and a stream
the outbox could not record."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.live_replies import LiveBudgets, LiveReply, live_text
from bot.publisher import Publisher
from bot.slack_calls import RetryPolicy, SlackCaller
from runner.drafts import Draft, Drafts
from runner.redact import secret_in_use
from store import events as ev
from tests.bot.live_env import Env, streams_of, write
from tests.db import add_event, undelivered


def publisher_passes() -> list[asyncio.Task]:
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done()
        and t.get_coro().__qualname__ in ("Publisher._publish_in_turn", "Publisher._follow")
    ]


# -- the drain loop never waits for a followed live reply ------------------------------------


async def test_a_followed_live_reply_does_not_hold_up_other_runs(env: Env) -> None:
    drafts = Drafts()
    streaming, other = await env.new_run(), await env.new_run()
    publisher = Publisher(env.store, env.client, drafts=drafts, poll_interval_s=0.05)
    await publisher.drain()  # both runs' starts (nothing to post)
    await publisher.start()
    try:
        # The loop's pass for `streaming` is posting an event when its agent starts to
        # write (the next turn streams as soon as the verdict is recorded): that pass, not
        # one of its own, goes on to follow the reply.
        env.slack.slow("chat.postMessage", 0.3)
        await add_event(env.store, streaming.id, ev.INFO, {"text": "tool ran"})
        await env.slack.wait_for(lambda s: s.in_flight.get("chat.postMessage"))
        write(drafts, streaming, "Working on it")
        await env.slack.wait_for(lambda s: streams_of(s, streaming), timeout=5)

        # Meanwhile another run has something to show.
        await add_event(env.store, other.id, ev.INFO, {"text": "the other run's news"})
        await env.slack.wait_for(lambda _: "the other run's news" in env.texts(other), timeout=5)
    finally:
        drafts.close(streaming.id)
        await publisher.stop(grace_s=5)


# -- two passes of one run waiting for a slot give both back ---------------------------------


async def test_passes_of_one_run_that_queued_for_a_slot_give_both_slots_back(env: Env) -> None:
    drafts = Drafts()
    publisher = Publisher(env.store, env.client, drafts=drafts)
    busy = [await env.new_run() for _ in range(8)]  # other runs, each with a post to make
    await publisher.drain()
    for _ in range(8):
        free = publisher._slots.free  # sizes the load only: fill every free slot
        if free < 2:
            break
        for run in busy[:free]:
            await add_event(env.store, run.id, ev.INFO, {"text": "busy"})
        held_before = env.slack.held.count("chat.postMessage")
        env.slack.slow("chat.postMessage", 0.5, times=free)  # Slack slow: slots stay taken
        loop_pass = asyncio.create_task(publisher.drain())
        # Every slot's post has reached Slack (counted as they start, not as they overlap:
        # on a loaded machine the first may be answered before the last is sent).
        await env.slack.wait_for(
            lambda s, n=free, b=held_before: s.held.count("chat.postMessage") == b + n
        )

        # Meanwhile a run's agent writes a short reply: _on_draft starts a pass for it,
        # and the loop's next pass finds the run's turn recorded: both queue for a slot.
        run = await env.new_run()
        write(drafts, run, "Short answer.")
        said = {"source": "worker", "content": "Short answer.", "turn": 1}
        await add_event(env.store, run.id, ev.AGENT_MESSAGE, said)
        drafts.close(run.id)
        await asyncio.gather(loop_pass, publisher.drain(), *publisher_passes())

    # Two runs with a post each, Slack slow to answer: they should go out side by side.
    for run in busy[:2]:
        await add_event(env.store, run.id, ev.INFO, {"text": "side by side"})
    env.slack.slow("chat.postMessage", 0.5, times=2)
    both = asyncio.create_task(publisher.drain())
    try:
        await env.slack.wait_for(lambda s: s.in_flight.get("chat.postMessage") == 2, timeout=3)
    finally:
        await both


# -- stop() waits for a pass started by a draft ----------------------------------------------


async def test_stop_finishes_the_post_a_live_reply_pass_has_in_flight(env: Env) -> None:
    drafts = Drafts()
    run = await env.new_run()
    publisher = Publisher(env.store, env.client, drafts=drafts)
    await publisher.start()
    write(drafts, run, "Paragraph 1. ")
    await env.slack.wait_for(lambda s: streams_of(s, run), timeout=5)

    # Shutdown: the runner lets the turn finish; its long reply (two parts) is recorded and
    # the draft closed. The pass following the reply posts it: part 1 into the live
    # message, part 2 posted (Slack is slow to answer).
    paragraphs = [f"Paragraph {n}. " + "word " * 500 for n in (1, 2)]
    env.slack.slow("chat.postMessage", 1.0)
    said = {"source": "worker", "content": "\n\n".join(paragraphs), "turn": 1}
    await add_event(env.store, run.id, ev.AGENT_MESSAGE, said)
    drafts.close(run.id)
    await env.slack.wait_for(lambda s: s.in_flight.get("chat.postMessage"), timeout=5)

    await publisher.stop(grace_s=5)  # then bot.server closes the store and the loop ends

    left = publisher_passes()
    for task in left:  # what asyncio.run does to tasks still running when serve() returns
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    await env.slack.wait_for(lambda s: s.in_flight["chat.postMessage"] == 0, timeout=5)
    assert left == [], "a publishing pass outlived stop()"

    await Publisher(env.store, env.client).drain()  # the next process
    assert await undelivered(env.store, run.id) == []
    second = [t for t in env.texts(run) if "Paragraph 2" in t]
    assert len(second) == 1, env.texts(run)


# -- a secret in a draft never reaches Slack, even once the run has let go of it -------------


async def test_a_secret_in_a_draft_never_reaches_slack_after_the_run_lets_go_of_it(
    env: Env, unpaced: None
) -> None:
    secret = "gsk_live_9f8e7d6c5b4a39281706"  # a Groq-style key: no shape redact knows
    drafts = Drafts()
    run = await env.new_run()
    assert await env.store.outbox.claim(run.id, owner="me", lease_s=60)
    caller = SlackCaller(env.client, RetryPolicy(max_attempts=1))
    reply = LiveReply(
        env.store,
        caller,
        caller,
        run,
        owner="me",
        live=None,
        budgets=LiveBudgets(),
        as_author=lambda _: {},
    )
    in_use = secret_in_use(secret)
    in_use.__enter__()
    try:
        await reply.show(write(drafts, run, "Let me look that up.", message_id="call-1"))
        # The model's next call (after a tool ran) echoes the key: redacted while in use.
        echoed = write(drafts, run, f"The key is {secret} as configured.", message_id="call-2")
        env.slack.slow("chat.stopStream", 0.5)  # Slack slow (or a 429's Retry-After)
        showing = asyncio.create_task(reply.show(echoed))
        await env.slack.wait_for(lambda s: s.in_flight.get("chat.stopStream"), timeout=5)
    finally:
        # Meanwhile the turn is recorded (its message redacted with the key), the draft
        # closed and the run parks or ends: its key is no longer in use.
        drafts.close(run.id)
        in_use.__exit__(None, None, None)
    await showing

    sent = json.dumps([c.params for c in env.slack.calls])
    assert secret not in sent


# -- ordinary hyphenated words are not held back as the start of a key -----------------------


async def test_an_ordinary_hyphenated_word_keeps_the_reply_a_stream(
    env: Env, unpaced: None
) -> None:
    drafts = Drafts()
    run = await env.new_run()
    assert await env.store.outbox.claim(run.id, owner="me", lease_s=60)
    caller = SlackCaller(env.client, RetryPolicy(max_attempts=1))
    reply = LiveReply(
        env.store,
        caller,
        caller,
        run,
        owner="me",
        live=None,
        budgets=LiveBudgets(),
        as_author=lambda _: {},
    )
    await reply.show(write(drafts, run, "First we split the task"))
    await reply.show(write(drafts, run, "-"))
    await reply.show(write(drafts, run, "based plan into steps."))

    assert env.slack.calls_to("chat.stopStream") == []
    assert env.slack.calls_to("chat.update") == []
    assert reply.message is not None and reply.message.streaming
    shown = env.slack.messages[("C1", reply.message.ref)]["text"]
    assert shown.endswith("First we split the task-based plan into steps.")


# -- an escaped live reply stays inside Slack's message text ---------------------------------


async def test_a_markup_heavy_reply_is_not_left_half_written_beside_the_final_one(
    env: Env, unpaced: None
) -> None:
    env.slack.refuse_streaming()  # the fallback: one message rewritten by chat.update
    drafts = Drafts()
    run = await env.new_run()
    publisher = Publisher(env.store, env.client, drafts=drafts)
    await publisher.drain()
    try:
        write(drafts, run, "Here is the page:\n")
        await env.slack.wait_for(lambda s: len(s.thread("C1", str(run.thread_ts))) == 1)
        html = "".join(f"<li><a href='#s{n}'>Step {n}</a></li>\n" for n in range(120))
        write(drafts, run, html)
        await env.slack.wait_for(lambda s: len(s.calls_to("chat.update")) >= 1, timeout=5)

        said = {"source": "worker", "content": "Here is the page:\n" + html, "turn": 1}
        await add_event(env.store, run.id, ev.AGENT_MESSAGE, said)
        drafts.close(run.id)
        await env.slack.wait_for(
            lambda s: any("blocks" in m for m in s.thread("C1", str(run.thread_ts))), timeout=5
        )
        await publisher.drain()
    finally:
        drafts.close(run.id)
        await publisher.stop(grace_s=5)

    assert await undelivered(env.store, run.id) == []
    starts = [t for t in env.texts(run) if "Here is the page" in t]
    assert len(starts) == 1, [t[:60] for t in env.texts(run)]
    assert env.slack.problems == []


# -- the live path makes broadcast mentions inert --------------------------------------------


def test_the_live_text_makes_broadcast_mentions_inert_as_the_final_message_does() -> None:
    draft = Draft("r1", "worker", 1, None, chunks=["@channel and @here: the build is red"])
    for markdown in (True, False):
        shown = live_text(draft, markdown=markdown)
        assert "@channel" not in shown and "@here" not in shown, shown


# -- a claim held elsewhere does not cost a database write per streamed chunk ---------------


async def test_chunks_do_not_hammer_the_claim_held_by_another_replica(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    drafts = Drafts()
    run = await env.new_run()
    publisher = Publisher(env.store, env.client, owner="replica-a", drafts=drafts)
    await publisher.drain()
    assert await env.store.outbox.claim(run.id, owner="replica-b", lease_s=60)
    tries: list[str] = []
    real_claim = env.store.outbox.claim

    async def counted(run_id: str, **kwargs: object) -> bool:
        tries.append(run_id)
        return await real_claim(run_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(env.store.outbox, "claim", counted)
    for number in range(100):  # the model writes 100 tokens, one every 10 ms
        write(drafts, run, f"w{number} ")
        await asyncio.sleep(0.01)
    drafts.close(run.id)
    await asyncio.gather(*publisher_passes())
    assert len(tries) <= 10, len(tries)


# -- a stream whose record failed is not left dangling ---------------------------------------


async def test_a_stream_the_outbox_failed_to_record_is_not_left_dangling(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    drafts = Drafts()
    run = await env.new_run()
    publisher = Publisher(env.store, env.client, drafts=drafts)
    await publisher.drain()
    real_live = env.store.outbox.live
    failures = [OperationalError("UPDATE outbox", {}, Exception("database is locked"))]

    async def live_fails_once(run_id: str, **kwargs: object) -> bool:
        if failures:
            raise failures.pop()
        return await real_live(run_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(env.store.outbox, "live", live_fails_once)
    try:
        write(drafts, run, "Hello")
        await env.slack.wait_for(lambda s: streams_of(s, run), timeout=5)
        await env.slack.wait_for(lambda _: not failures and not publisher_passes(), timeout=5)
        write(drafts, run, " world")  # the next chunk: a new pass shows the reply
        await env.slack.wait_for(lambda s: len(streams_of(s, run)) == 2, timeout=5)

        said = {"source": "worker", "content": "Hello world, done.", "turn": 1}
        await add_event(env.store, run.id, ev.AGENT_MESSAGE, said)
        drafts.close(run.id)
        await env.slack.wait_for(
            lambda _: any("done." in t for t in env.texts(run)) and not publisher_passes()
        )
        await publisher.drain()
    finally:
        drafts.close(run.id)
        await publisher.stop(grace_s=5)

    assert await undelivered(env.store, run.id) == []
    assert not [m for m in env.thread(run) if m.get("streaming")], env.texts(run)
    assert len([t for t in env.texts(run) if "Hello" in t]) == 1, env.texts(run)
