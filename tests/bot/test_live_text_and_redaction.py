"""Live text and redaction at their edges: a broadcast word still being written, keys after
an escape or a percent-encoded byte, non-ASCII words before "sk-", prose about bearer
tokens, the live text's cut; and the publisher's loop around followers (woken when one
ends, never waiting in a slot behind one)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from bot.live_replies import LIVE_TEXT_LIMIT, LiveBudgets, LiveReply, live_text
from bot.logs import install_secret_filter
from bot.publisher import PARALLEL_RUNS, Publisher
from bot.slack_calls import RetryPolicy, SlackCaller
from runner.drafts import Draft, Drafts
from runner.redact import redact
from store import events as ev
from tests.bot.live_env import Env, streams_of, write
from tests.db import add_event


def _live_reply(env: Env, run) -> LiveReply:  # type: ignore[no-untyped-def]
    caller = SlackCaller(env.client, RetryPolicy(max_attempts=1))
    return LiveReply(
        env.store,
        caller,
        caller,
        run,
        owner="me",
        live=None,
        budgets=LiveBudgets(),
        as_author=lambda _: {},
    )


# -- a broadcast word still being written keeps the reply a stream ---------------------------


@pytest.mark.parametrize(
    "chunks",
    [
        ["Filter the posts with WHERE channel = ", "@channel", "Id AND day = @day;"],
        ["Thanks ", "@every", "one, the build is green again."],
    ],
    ids=["sql-parameter", "split-mid-word"],
)
async def test_a_broadcast_word_still_being_written_keeps_the_reply_a_stream(
    env: Env, unpaced: None, chunks: list[str]
) -> None:
    drafts = Drafts()
    run = await env.new_run()
    assert await env.store.outbox.claim(run.id, owner="me", lease_s=60)
    reply = _live_reply(env, run)
    for chunk in chunks:
        await reply.show(write(drafts, run, chunk))

    assert env.slack.calls_to("chat.stopStream") == []
    assert env.slack.calls_to("chat.update") == []
    assert reply.message is not None and reply.message.streaming


# -- keys after an escape or a %XX are redacted ----------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"content": "Here it is:\n" + "xox" + "b-" + "1234567890-abcdefghijkl"}),
        repr("token:\tsk-proj-abcdef1234567890"),
        "payload=%7B%22value%22%3A%22sk-proj-abcdef1234567890%22%7D",
    ],
    ids=["json-newline", "repr-tab", "form-encoded"],
)
def test_a_key_shape_after_an_escape_sequence_is_still_redacted(text: str) -> None:
    shown = redact(text)
    assert "1234567890" not in shown, shown


def test_a_json_log_line_with_a_key_after_a_newline_is_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_secret_filter()
    caplog.set_level(logging.INFO)
    body = json.dumps({"role": "assistant", "content": "Use:\nsk-proj-abcdefghijklmnop1234567890"})
    logging.getLogger("autogen_core.events").info("LLM call %s", body)
    assert "abcdefghijklmnop" not in caplog.text, caplog.text


# -- a word start is any letter's, not only ASCII -------------------------------------------


def test_a_place_name_with_a_non_ascii_letter_before_sk_is_not_redacted() -> None:
    text = "The office moves to the Gdańsk-Gdynia-Sopot area in May."
    assert redact(text) == text
    draft = Draft("r1", "worker", 1, None, chunks=[text, " More"])
    assert "[redacted]" not in live_text(draft, markdown=True)


# -- a follower that ends wakes the loop for events it left ----------------------------------


async def test_an_event_recorded_while_a_follower_posts_is_shown_without_the_poll(
    env: Env, unpaced: None
) -> None:
    drafts = Drafts()
    run = await env.new_run()
    publisher = Publisher(env.store, env.client, drafts=drafts, poll_interval_s=30.0)
    await publisher.drain()  # the run's start: nothing to post
    await publisher.start()
    try:
        write(drafts, run, "Short answer")
        await env.slack.wait_for(lambda s: streams_of(s, run), timeout=5)
        env.slack.slow("chat.update", 1.0)  # the finished reply replacing the live one
        said = {"source": "worker", "content": "Short answer.", "turn": 1}
        await add_event(env.store, run.id, ev.AGENT_MESSAGE, said)
        drafts.close(run.id)
        await env.slack.wait_for(lambda s: s.in_flight.get("chat.update"), timeout=5)
        # Recorded while that post is in flight (the verifier is quick, say).
        await add_event(env.store, run.id, ev.INFO, {"text": "the next news"})
        await env.slack.wait_for(
            lambda _: any("the next news" in t for t in env.texts(run)), timeout=5
        )
    finally:
        drafts.close(run.id)
        await publisher.stop(grace_s=5)


# -- a loop pass queued for a slot never waits in it on a follower's lock -------------------


async def test_passes_queued_behind_followers_do_not_hold_up_other_runs(env: Env) -> None:
    drafts = Drafts()
    publisher = Publisher(env.store, env.client, drafts=drafts)
    busy = [await env.new_run() for _ in range(PARALLEL_RUNS)]
    writing = [await env.new_run() for _ in range(PARALLEL_RUNS)]
    other = await env.new_run()
    await publisher.drain()  # every run's start: nothing to post
    tasks: list[asyncio.Task[None]] = []
    try:
        # Slack is slow: each slot is taken by a busy run's post.
        for run in busy:
            await add_event(env.store, run.id, ev.INFO, {"text": "busy"})
        env.slack.slow("chat.postMessage", 2.0, times=PARALLEL_RUNS)  # long: all in flight at once
        busy_passes = [asyncio.create_task(publisher._publish_in_turn(r.id)) for r in busy]
        tasks += busy_passes
        await env.slack.wait_for(
            lambda s: s.in_flight.get("chat.postMessage") == PARALLEL_RUNS, timeout=5
        )
        # The loop's drain also found these runs with an event to show: they queue for a slot.
        for run in writing:
            await add_event(env.store, run.id, ev.INFO, {"text": "tool ran"})
        tasks += [asyncio.create_task(publisher._publish_in_turn(r.id)) for r in writing]
        await asyncio.sleep(0.05)
        # Their agents start writing: followers (outside the slots) take the runs.
        for run in writing:
            write(drafts, run, "Working on it")
        await env.slack.wait_for(lambda s: all(streams_of(s, r) for r in writing), timeout=10)
        await asyncio.gather(*busy_passes)  # the slow posts are done, their slots free

        await add_event(env.store, other.id, ev.INFO, {"text": "the other run's news"})
        tasks.append(asyncio.create_task(publisher._publish_in_turn(other.id)))
        await env.slack.wait_for(lambda _: "the other run's news" in env.texts(other), timeout=5)
    finally:
        for run in writing:
            drafts.close(run.id)
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=20)
        await publisher.stop(grace_s=5)


# -- the live text stays a prefix when it reaches the limit ---------------------------------


def test_the_live_text_stays_a_prefix_when_it_reaches_the_limit() -> None:
    first = "x" * (LIVE_TEXT_LIMIT - 2) + "\n\n"
    before = live_text(Draft("r1", "worker", 1, None, chunks=[first]), markdown=True)
    after = live_text(Draft("r1", "worker", 1, None, chunks=[first, "Next"]), markdown=True)
    assert after.startswith(before)


# -- prose about bearer authentication is not redacted ----------------------------------------


def test_prose_about_bearer_authentication_is_not_redacted() -> None:
    text = "The API uses Bearer authentication; Bearer tokens expire after an hour."
    assert redact(text) == text
