"""Live replies: a reply shown in its thread while the model writes it, against the emulator.

`LiveReply` is driven through the real `SlackCaller` and slack_sdk client over HTTP, with a
SQLite store holding the run's outbox row (claimed by this test's publisher), so what is
checked is what Slack and the outbox end up with: the stream started, appended to, stopped
and rewritten, the fallback posted message, and the live message's record.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from slack_sdk.web.async_client import AsyncWebClient

import bot.live_replies as live_replies
from bot.live_replies import (
    LIVE_TEXT_LIMIT,
    NO_STREAMING_RETRY_S,
    CallBudget,
    LiveBudgets,
    LiveReply,
    live_text,
)
from bot.slack_calls import ClaimLost, RetryPolicy, SlackCaller
from runner.drafts import Draft, Drafts
from runner.redact import REDACTED, secret_in_use
from store import Store
from store.outbox import LiveMessage
from store.records import Run
from store.settings import load_settings
from tests.bot.live_env import run_with_thread
from tests.fakes.slack_api import SlackApiEmulator

OWNER = "replica-a"


def draft(text: str, *, source: str = "writer", turn: int = 1, version: int = 1) -> Draft:
    return Draft("r1", source, turn, None, chunks=[text], version=version)


class Clock:
    """What `time.monotonic()` answers in `bot.live_replies`, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(live_replies, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


# -- CallBudget and LiveBudgets ---------------------------------------------------------


def test_a_budget_allows_per_minute_calls_then_refuses(clock: Clock) -> None:
    budget = CallBudget(3)
    assert [budget.take() for _ in range(3)] == [True, True, True]
    assert budget.take() is False
    clock.now += 59.9
    assert budget.take() is False  # refusals are not counted, but the minute is not over


def test_a_budget_frees_each_call_sixty_seconds_after_it(clock: Clock) -> None:
    budget = CallBudget(2)
    assert budget.take()
    clock.now += 30.0
    assert budget.take()
    assert not budget.take()
    clock.now += 30.0  # the first call is a minute old
    assert budget.take()
    assert not budget.take()
    clock.now += 30.0  # the second one is too
    assert budget.take()
    assert not budget.take()
    clock.now += 60.0  # everything is
    assert [budget.take(), budget.take(), budget.take()] == [True, True, False]


def test_a_budget_of_zero_allows_nothing(clock: Clock) -> None:
    assert CallBudget(0).take() is False


def test_live_budgets_stay_inside_the_tiers(clock: Clock) -> None:
    budgets = LiveBudgets()
    assert sum(budgets.start.take() for _ in range(30)) == 16  # Tier 2: 20 a minute
    assert sum(budgets.append.take() for _ in range(120)) == 80  # Tier 4: 100 a minute
    assert sum(budgets.update.take() for _ in range(60)) == 30  # Tier 3, shared
    assert budgets.may_stream
    budgets.streaming_refused_until = clock.now + 10.0
    assert not budgets.may_stream
    clock.now += 10.0
    assert budgets.may_stream


# -- live_text ---------------------------------------------------------------------------


def test_live_text_names_the_speaker_in_markdown_or_mrkdwn() -> None:
    shown = draft("Hello **there**", source="writer", turn=3)
    assert live_text(shown, markdown=True) == "**writer** · turn 3\nHello **there**"
    assert live_text(shown, markdown=False) == "*writer* · turn 3\nHello **there**"


def test_live_text_escapes_the_speaker_and_the_text() -> None:
    shown = draft("<!channel> & <https://x.test|click> > 1", source="a<b>&c")
    assert live_text(shown, markdown=False) == (
        "*a&lt;b&gt;&amp;c* · turn 1\n&lt;!channel&gt; &amp; &lt;https://x.test|click&gt; &gt; 1"
    )
    assert "<" not in live_text(shown, markdown=True)


def test_live_text_is_cut_at_the_limit() -> None:
    header = "*writer* · turn 1\n"
    exact = draft("a" * LIVE_TEXT_LIMIT)
    assert live_text(exact, markdown=False) == header + "a" * LIVE_TEXT_LIMIT

    longer = draft("a" * LIVE_TEXT_LIMIT + "b" * 100)
    assert live_text(longer, markdown=False) == header + "a" * LIVE_TEXT_LIMIT + " …"

    # Cut where the limit falls, spaces kept: what was shown stays a prefix of what follows.
    spaced = draft("a" * (LIVE_TEXT_LIMIT - 2) + "  " + "b" * 10)
    assert live_text(spaced, markdown=False) == header + "a" * (LIVE_TEXT_LIMIT - 2) + "   …"


def test_live_text_counts_the_escaped_text_against_the_limit() -> None:
    """Markup escapes to several characters each: the limit is on what Slack receives."""
    shown = draft("<" * LIVE_TEXT_LIMIT)
    body = live_text(shown, markdown=True).split("\n", 1)[1]
    assert body == "&lt;" * (LIVE_TEXT_LIMIT // 4) + " …"


def test_live_text_never_cuts_an_escaped_character_in_half() -> None:
    shown = draft("a" * (LIVE_TEXT_LIMIT - 2) + "<" + "b" * 10)
    body = live_text(shown, markdown=False).split("\n", 1)[1]
    assert body == "a" * (LIVE_TEXT_LIMIT - 2) + " …"  # "&lt;" would not fit whole


def test_live_text_hides_secrets() -> None:
    assert "abcdef123456" not in live_text(draft("key: sk-abcdef123456"), markdown=True)


# -- LiveReply against the emulator --------------------------------------------------------


@dataclass
class Live:
    """A store, the emulator, a caller of it, and the drafts a run's agents write."""

    store: Store
    slack: SlackApiEmulator
    client: AsyncWebClient
    caller: SlackCaller
    budgets: LiveBudgets = field(default_factory=LiveBudgets)
    drafts: Drafts = field(default_factory=Drafts)

    async def new_run(self, *, claimed_by: str = OWNER) -> Run:
        """A run whose thread (its root message in C1) is in Slack, its outbox claimed."""
        run = await run_with_thread(self.store, self.client)
        assert await self.store.outbox.claim(run.id, owner=claimed_by, lease_s=60)
        return run

    def reply(
        self,
        run: Run,
        *,
        live: LiveMessage | None = None,
        caller: SlackCaller | None = None,
        as_author: Callable[[dict[str, str] | None], dict[str, str]] = lambda _: {},
    ) -> LiveReply:
        return LiveReply(
            self.store,
            caller or self.caller,
            caller or self.caller,
            run,
            owner=OWNER,
            live=live,
            budgets=self.budgets,
            as_author=as_author,
        )

    def write(
        self,
        run: Run,
        chunk: str,
        *,
        source: str = "writer",
        message_id: str | None = None,
        identity: dict[str, str] | None = None,
    ) -> Draft:
        self.drafts.add(
            run.id, source=source, chunk=chunk, turn=1, identity=identity, message_id=message_id
        )
        written = self.drafts.get(run.id)
        assert written is not None
        return written

    async def recorded(self, run: Run) -> LiveMessage | None:
        backlog = await self.store.outbox.backlog(run.id)
        assert backlog is not None
        return backlog.live

    def message(self, ts: str) -> dict:
        return self.slack.messages[("C1", ts)]

    def calls(self, method: str) -> list[dict]:
        return [call.params for call in self.slack.calls_to(method)]


@pytest.fixture
async def env(tmp_path: Path, secret_key: str) -> AsyncIterator[Live]:
    store = await Store.open(
        load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/live.db", server_secret_key=secret_key
        )
    )
    try:
        async with SlackApiEmulator(member_channels={"C1"}) as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            yield Live(store, slack, client, SlackCaller(client, RetryPolicy(max_attempts=1)))
    finally:
        await store.close()


@pytest.fixture
def unpaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """No waiting between a live reply's calls."""
    monkeypatch.setattr(live_replies, "APPEND_EVERY_S", 0.0)
    monkeypatch.setattr(live_replies, "UPDATE_EVERY_S", 0.0)


async def test_the_first_show_starts_a_stream_and_records_it(env: Live) -> None:
    run = await env.new_run()
    reply = env.reply(run)

    await reply.show(env.write(run, "Hello"))

    (start,) = env.calls("chat.startStream")
    assert start["channel"] == "C1" and start["thread_ts"] == run.thread_ts
    assert (start["recipient_user_id"], start["recipient_team_id"]) == ("U1", "T1")
    assert reply.message is not None
    ts = reply.message.ref
    assert reply.message == LiveMessage(ts, "writer", streaming=True)
    assert await env.recorded(run) == reply.message
    message = env.message(ts)
    assert message["streaming"] is True
    assert message["text"] == "**writer** · turn 1\nHello"
    assert [m["ts"] for m in env.slack.thread("C1", str(run.thread_ts))] == [ts]
    assert 0 < reply.wait_s <= live_replies.APPEND_EVERY_S
    assert env.calls("chat.postMessage")[1:] == []  # only the root
    assert env.slack.problems == []


async def test_shows_are_paced(env: Live) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "Hello"))

    await reply.show(env.write(run, " world"))  # too soon after the start

    assert env.calls("chat.appendStream") == []
    assert reply.appends == 0


async def test_later_shows_append_only_the_new_text(env: Live, unpaced: None) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "Hello"))
    assert reply.wait_s == 0.0

    await reply.show(env.write(run, ", world"))
    await reply.show(env.write(run, "!"))
    await reply.show(env.drafts.get(run.id) or draft("x"))  # nothing new: no call

    assert [c["markdown_text"] for c in env.calls("chat.appendStream")] == [", world", "!"]
    assert reply.appends == 2
    assert reply.message is not None
    message = env.message(reply.message.ref)
    assert message["text"] == "**writer** · turn 1\nHello, world!"
    assert message["stream_appends"] == [", world", "!"]
    assert await env.recorded(run) == LiveMessage(reply.message.ref, "writer", streaming=True)
    assert env.slack.problems == []


async def test_the_agent_may_post_as_itself(env: Live) -> None:
    run = await env.new_run()
    reply = env.reply(run, as_author=lambda who: {"username": who["name"]} if who else {})

    await reply.show(env.write(run, "Hi", identity={"name": "Writer Bot"}))

    (start,) = env.calls("chat.startStream")
    assert start["username"] == "Writer Bot"
    assert reply.message is not None
    assert env.message(reply.message.ref)["username"] == "Writer Bot"


async def test_past_the_limit_the_live_text_stops_growing(env: Live, unpaced: None) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "a" * (LIVE_TEXT_LIMIT - 10)))
    await reply.show(env.write(run, "b" * 20))
    await reply.show(env.write(run, "c" * 20))

    assert [c["markdown_text"] for c in env.calls("chat.appendStream")] == ["b" * 10 + " …"]
    assert reply.message is not None
    assert env.message(reply.message.ref)["text"].endswith("a" * 10 + "b" * 10 + " …")
    assert env.slack.problems == []


async def test_a_new_model_call_stops_the_stream_and_rewrites_it(env: Live, unpaced: None) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "Let me look", message_id="call-1"))
    assert reply.message is not None
    ts = reply.message.ref

    await reply.show(env.write(run, "Found it", message_id="call-2"))

    assert env.calls("chat.appendStream") == []
    assert [c["ts"] for c in env.calls("chat.stopStream")] == [ts]
    (update,) = env.calls("chat.update")
    assert (update["ts"], update["text"]) == (ts, "*writer* · turn 1\nFound it")
    message = env.message(ts)
    assert (message["streaming"], message["text"]) == (False, "*writer* · turn 1\nFound it")
    assert reply.message == LiveMessage(ts, "writer", streaming=False)
    assert await env.recorded(run) == reply.message

    # No longer a stream: what comes next rewrites the message whole.
    await reply.show(env.write(run, " in the docs", message_id="call-2"))
    assert env.calls("chat.appendStream") == []
    assert env.calls("chat.update")[-1]["text"] == "*writer* · turn 1\nFound it in the docs"
    assert len(env.calls("chat.stopStream")) == 1
    assert env.slack.problems == []


async def test_refused_streaming_falls_back_to_a_posted_message(env: Live, unpaced: None) -> None:
    env.slack.refuse_streaming("feature_not_enabled")
    run = await env.new_run()
    reply = env.reply(run)
    before = time.monotonic()

    await reply.show(env.write(run, "Hello <@U2>"))

    assert [c.error for c in env.slack.calls_to("chat.startStream")] == ["feature_not_enabled"]
    posted = env.calls("chat.postMessage")[-1]
    assert posted["thread_ts"] == run.thread_ts
    assert posted["text"] == "*writer* · turn 1\nHello &lt;@U2&gt;"
    assert reply.message is not None and reply.message.streaming is False
    assert await env.recorded(run) == reply.message
    assert env.message(reply.message.ref)["text"] == posted["text"]
    refused_until = env.budgets.streaming_refused_until
    assert before + NO_STREAMING_RETRY_S <= refused_until <= time.monotonic() + NO_STREAMING_RETRY_S
    assert not env.budgets.may_stream

    # The fallback grows by chat.update.
    await reply.show(env.write(run, ", done"))
    assert env.calls("chat.update")[-1]["text"] == "*writer* · turn 1\nHello &lt;@U2&gt;, done"

    # The next live reply (another run, the same process) does not try to stream.
    other = await env.new_run()
    second = env.reply(other)
    await second.show(env.write(other, "Hi"))
    assert len(env.calls("chat.startStream")) == 1
    assert second.message is not None and second.message.streaming is False
    assert env.calls("chat.postMessage")[-1]["thread_ts"] == other.thread_ts
    assert env.slack.problems == []


async def test_a_passing_refusal_falls_back_but_streams_next_time(env: Live) -> None:
    env.slack.fail("chat.startStream", status=200, error="internal_error", times=1)
    run = await env.new_run()
    first = env.reply(run)
    await first.show(env.write(run, "Hello"))
    assert first.message is not None and first.message.streaming is False
    assert env.budgets.may_stream

    other = await env.new_run()
    second = env.reply(other)
    await second.show(env.write(other, "Hi"))
    assert second.message is not None and second.message.streaming is True


async def test_a_rate_limited_start_falls_back_without_giving_up_streaming(env: Live) -> None:
    env.slack.fail("chat.startStream", status=429, retry_after=1, times=1)
    run = await env.new_run()
    reply = env.reply(run)

    await reply.show(env.write(run, "Hello"))

    assert [c.status for c in env.slack.calls_to("chat.startStream")] == [429]
    assert reply.message is not None and reply.message.streaming is False
    assert env.message(reply.message.ref)["text"] == "*writer* · turn 1\nHello"
    assert env.budgets.may_stream


async def test_no_start_budget_left_means_a_posted_message(env: Live) -> None:
    env.budgets.start = CallBudget(0)
    run = await env.new_run()
    reply = env.reply(run)

    await reply.show(env.write(run, "Hello"))

    assert env.calls("chat.startStream") == []
    assert reply.message is not None and reply.message.streaming is False
    assert env.budgets.may_stream


async def test_no_append_budget_left_waits_without_calling(env: Live, unpaced: None) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "Hello"))
    env.budgets.append = CallBudget(0)

    await reply.show(env.write(run, " world"))

    assert env.calls("chat.appendStream") == [] and env.calls("chat.update") == []
    env.budgets.append = CallBudget(1)
    await reply.show(env.drafts.get(run.id) or draft("x"))
    assert [c["markdown_text"] for c in env.calls("chat.appendStream")] == [" world"]


async def test_an_expired_streams_append_falls_back_to_updating_the_whole_text(
    env: Live, unpaced: None
) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "Hello"))
    assert reply.message is not None
    ts = reply.message.ref
    env.slack.expire_streams()

    await reply.show(env.write(run, " world"))

    assert [c.error for c in env.slack.calls_to("chat.appendStream")] == [
        "message_not_in_streaming_state"
    ]
    assert [c.error for c in env.slack.calls_to("chat.stopStream")] == [
        "message_not_in_streaming_state"
    ]
    (update,) = env.calls("chat.update")
    assert (update["ts"], update["text"]) == (ts, "*writer* · turn 1\nHello world")
    assert env.message(ts)["text"] == "*writer* · turn 1\nHello world"
    assert reply.appends == 0
    assert reply.message == LiveMessage(ts, "writer", streaming=False)
    assert await env.recorded(run) == reply.message
    assert env.slack.problems == []


async def test_remove_stops_deletes_and_forgets_the_live_message(env: Live) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "Hello"))
    assert reply.message is not None
    ts = reply.message.ref

    await reply.remove()

    assert [c["ts"] for c in env.calls("chat.stopStream")] == [ts]
    assert [c["ts"] for c in env.calls("chat.delete")] == [ts]
    assert ("C1", ts) not in env.slack.messages
    assert env.slack.thread("C1", str(run.thread_ts)) == []
    (stream,) = env.slack.streams()
    assert (stream["ts"], stream["streaming"]) == (ts, False)
    assert reply.message is None
    assert await env.recorded(run) is None
    await reply.remove()  # nothing left to remove
    assert len(env.calls("chat.delete")) == 1
    assert env.slack.problems == []


async def test_remove_of_a_posted_fallback_only_deletes_it(env: Live) -> None:
    env.slack.refuse_streaming()
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "Hello"))
    assert reply.message is not None and not reply.message.streaming

    await reply.remove()

    assert env.calls("chat.stopStream") == []
    assert len(env.calls("chat.delete")) == 1
    assert await env.recorded(run) is None


async def test_remove_of_a_message_already_deleted_still_forgets_it(env: Live) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "Hello"))
    assert reply.message is not None
    await env.client.chat_stopStream(channel="C1", ts=reply.message.ref)
    await env.client.chat_delete(channel="C1", ts=reply.message.ref)

    await reply.remove()

    assert [c.error for c in env.slack.calls_to("chat.stopStream")][-1] == "message_not_found"
    assert [c.error for c in env.slack.calls_to("chat.delete")][-1] == "message_not_found"
    assert reply.message is None
    assert await env.recorded(run) is None


async def test_stop_ends_the_stream_and_keeps_the_message(env: Live) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    assert await reply.stop() is None  # nothing shown yet
    await reply.show(env.write(run, "Hello"))
    assert reply.message is not None
    ts = reply.message.ref

    assert await reply.stop() == ts
    assert await reply.stop() == ts  # already stopped: no second call

    assert len(env.calls("chat.stopStream")) == 1
    assert env.message(ts)["streaming"] is False
    assert await env.recorded(run) == LiveMessage(ts, "writer", streaming=False)
    assert env.slack.problems == []


async def test_another_agents_leftover_is_removed_before_showing(env: Live) -> None:
    run = await env.new_run()
    crashed = env.reply(run)
    await crashed.show(env.write(run, "A critique", source="critic"))
    leftover = await env.recorded(run)
    assert leftover is not None and leftover.source == "critic"
    env.drafts.close(run.id)

    # A later pass (after a crash) finds the critic's live message; the writer speaks now.
    reply = env.reply(run, live=leftover)
    await reply.show(env.write(run, "A draft", source="writer"))

    assert [c["ts"] for c in env.calls("chat.delete")] == [leftover.ref]
    assert reply.message is not None and reply.message.ref != leftover.ref
    assert reply.message.source == "writer" and reply.message.streaming
    assert await env.recorded(run) == reply.message
    assert [m["text"] for m in env.slack.thread("C1", str(run.thread_ts))] == [
        "**writer** · turn 1\nA draft"
    ]
    assert env.slack.problems == []


async def test_a_stream_left_by_an_earlier_pass_is_stopped_and_rewritten(
    env: Live, unpaced: None
) -> None:
    run = await env.new_run()
    earlier = env.reply(run)
    await earlier.show(env.write(run, "Hello"))
    left = await env.recorded(run)
    assert left is not None and left.streaming

    # This pass does not know what the stream shows: it rewrites it whole.
    reply = env.reply(run, live=left)
    await reply.show(env.write(run, " again"))

    assert env.calls("chat.appendStream") == []
    assert [c["ts"] for c in env.calls("chat.stopStream")] == [left.ref]
    assert env.message(left.ref)["text"] == "*writer* · turn 1\nHello again"
    assert await env.recorded(run) == LiveMessage(left.ref, "writer", streaming=False)
    assert env.slack.problems == []


async def test_claim_lost_when_another_replica_holds_the_run(env: Live) -> None:
    run = await env.new_run(claimed_by="replica-b")
    reply = env.reply(run)

    with pytest.raises(ClaimLost):
        await reply.show(env.write(run, "Hello"))

    assert await env.recorded(run) is None  # nothing recorded for replica-a
    # Without a renewal before each call, the stream went out before the outbox said no.
    assert len(env.calls("chat.startStream")) == 1


async def test_a_caller_renewing_the_claim_shows_nothing_once_it_is_lost(env: Live) -> None:
    run = await env.new_run(claimed_by="replica-b")

    async def renew() -> bool:
        return await env.store.outbox.renew(run.id, owner=OWNER, lease_s=60)

    reply = env.reply(run, caller=SlackCaller(env.client, RetryPolicy(1), before_attempt=renew))

    with pytest.raises(ClaimLost):
        await reply.show(env.write(run, "Hello"))

    assert env.calls("chat.startStream") == [] and env.calls("chat.postMessage")[1:] == []
    assert await env.recorded(run) is None


async def test_claim_lost_while_removing(env: Live) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "Hello"))
    await env.store.outbox.release(run.id, owner=OWNER)
    assert await env.store.outbox.claim(run.id, owner="replica-b", lease_s=60)

    with pytest.raises(ClaimLost):
        await reply.remove()

    assert reply.message is not None
    assert await env.recorded(run) == LiveMessage(reply.message.ref, "writer", streaming=True)


async def test_a_secret_written_across_chunks_never_shows(env: Live, unpaced: None) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    with secret_in_use("correct-horse-battery"):
        await reply.show(env.write(run, "The key is correct-"))
        await reply.show(env.write(run, "horse-battery."))
    assert reply.message is not None

    # Its start was held back, so the redacted text still extends what the stream showed.
    sent = [c.params.get("markdown_text", "") for c in env.slack.calls]
    assert not any("correct" in text for text in sent), sent
    assert [c["markdown_text"] for c in env.calls("chat.appendStream")] == [f"{REDACTED}."]
    assert env.message(reply.message.ref)["text"] == f"**writer** · turn 1\nThe key is {REDACTED}."


async def test_a_rate_limited_append_waits_and_catches_up(
    env: Live, unpaced: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "Hello"))
    env.slack.fail("chat.appendStream", status=429, retry_after=1, times=1)

    await reply.show(env.write(run, " world"))
    assert [c.status for c in env.slack.calls_to("chat.appendStream")] == [429]
    assert reply.message is not None and reply.message.streaming  # still a stream
    assert reply.wait_s > 0  # it backs off instead of giving the stream up

    monkeypatch.setattr(reply, "_next_call_at", 0.0)
    await reply.show(env.write(run, "!"))
    assert [c.status for c in env.slack.calls_to("chat.appendStream")] == [429, 200]
    assert env.message(reply.message.ref)["text"] == "**writer** · turn 1\nHello world!"
    assert env.slack.problems == []


async def test_a_live_message_deleted_meanwhile_is_given_up(env: Live, unpaced: None) -> None:
    env.slack.refuse_streaming()
    run = await env.new_run()
    reply = env.reply(run)
    await reply.show(env.write(run, "Hello"))
    assert reply.message is not None
    await env.client.chat_delete(channel="C1", ts=reply.message.ref)

    await reply.show(env.write(run, " world"))
    await reply.show(env.write(run, " again"))

    assert [c.error for c in env.slack.calls_to("chat.update")] == ["message_not_found"]
    assert reply.message is None
    assert await env.recorded(run) is None


async def test_a_thread_slack_will_not_post_in_gives_up_quietly(env: Live, unpaced: None) -> None:
    env.slack.refuse_streaming()
    run = await env.new_run()
    env.slack.fail("chat.postMessage", status=200, error="not_in_channel", times=1)
    reply = env.reply(run)

    await reply.show(env.write(run, "Hello"))
    await reply.show(env.write(run, " world"))

    assert reply.message is None
    assert await env.recorded(run) is None
    assert len(env.calls("chat.startStream")) == 1
    assert len(env.calls("chat.postMessage")) == 2  # the root, then the refused reply
