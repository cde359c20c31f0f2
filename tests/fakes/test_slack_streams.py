"""The emulator's streaming messages must answer the real slack_sdk client the way Slack does.

Every test drives ``chat.startStream`` / ``chat.appendStream`` / ``chat.stopStream`` through
``AsyncWebClient`` over HTTP, so what the app's live replies meet in the end-to-end tests
(required arguments, the per-call size limit, expiry, no edits mid-stream, the rate tier)
is what Slack would answer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import SlackApiEmulator
from tests.fakes.slack_streams import MARKDOWN_TEXT_LIMIT, STREAM_TIERS

RECIPIENT = {"recipient_user_id": "U1", "recipient_team_id": "T1"}


@pytest.fixture
async def slack() -> AsyncIterator[SlackApiEmulator]:
    async with SlackApiEmulator(member_channels={"C1"}) as emulator:
        yield emulator


@pytest.fixture
def client(slack: SlackApiEmulator) -> AsyncWebClient:
    # No retry handlers: a 429 must reach the test as it left the emulator.
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])


@pytest.fixture
def parent(slack: SlackApiEmulator) -> str:
    """A human's message in C1 whose thread the streams reply in."""
    return slack.add_user_message("C1", "summarise the incident, please")


async def slack_error(call: Any) -> SlackApiError:
    """Await ``call`` expecting the SDK to raise, and hand back the error to inspect."""
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


async def started(client: AsyncWebClient, parent: str, text: str = "Thinking") -> str:
    """Start a stream in ``parent``'s thread in C1; its ts."""
    answer = await client.chat_startStream(
        channel="C1", thread_ts=parent, markdown_text=text, **RECIPIENT
    )
    return str(answer["ts"])


# -- chat.startStream ---------------------------------------------------------------


async def test_start_in_a_channel_thread_stores_a_streaming_reply(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    answer = await client.chat_startStream(
        channel="C1", thread_ts=parent, markdown_text="**worker** · turn 1", **RECIPIENT
    )

    assert answer["ok"] and answer["channel"] == "C1"
    message = slack.messages[("C1", answer["ts"])]
    assert message["streaming"] is True
    assert message["text"] == "**worker** · turn 1"
    assert message["thread_ts"] == parent
    assert message["user"] == slack.bot_user_id
    assert message["stream_recipient"] == ("U1", "T1")
    assert message["stream_appends"] == []
    assert [m["ts"] for m in slack.thread("C1", parent)] == [answer["ts"]]
    assert slack.messages[("C1", parent)]["reply_count"] == 1
    assert slack.problems == []


async def test_start_without_markdown_text_is_an_empty_stream(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    answer = await client.chat_startStream(channel="C1", thread_ts=parent, **RECIPIENT)
    assert slack.messages[("C1", answer["ts"])]["text"] == ""
    assert slack.problems == []


@pytest.mark.parametrize(
    ("recipient", "missing"),
    [
        ({}, "recipient_user_id, recipient_team_id"),
        ({"recipient_user_id": "U1"}, "recipient_team_id"),
        ({"recipient_team_id": "T1"}, "recipient_user_id"),
    ],
)
async def test_start_in_a_channel_needs_the_recipient(
    slack: SlackApiEmulator,
    client: AsyncWebClient,
    parent: str,
    recipient: dict[str, str],
    missing: str,
) -> None:
    error = await slack_error(
        client.chat_startStream(channel="C1", thread_ts=parent, markdown_text="hi", **recipient)
    )

    assert error.response.status_code == 200
    assert error.response["error"] == "invalid_arguments"
    assert slack.thread("C1", parent) == []
    assert slack.streams() == []
    (problem,) = slack.problems
    assert problem.startswith("chat.startStream (call #1): invalid_arguments")
    assert f"{missing} required to stream outside a DM" in problem


async def test_start_in_a_dm_needs_no_recipient(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    # Posting to a user id opens the app's DM with them (a "D..." channel the bot is in).
    opened = await client.chat_postMessage(channel="U7", text="Your run started")
    dm = str(opened["channel"])
    assert dm.startswith("D")

    answer = await client.chat_startStream(
        channel=dm, thread_ts=opened["ts"], markdown_text="Working on it"
    )

    assert answer["channel"] == dm
    message = slack.messages[(dm, answer["ts"])]
    assert message["streaming"] is True
    assert message["stream_recipient"] == (None, None)
    assert [m["ts"] for m in slack.thread(dm, opened["ts"])] == [answer["ts"]]
    assert slack.problems == []


async def test_start_in_a_dm_the_app_never_opened_is_refused(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    error = await slack_error(
        client.chat_startStream(channel="D9", thread_ts="1700000000.000100", markdown_text="x")
    )
    assert error.response["error"] == "not_in_channel"
    assert slack.streams() == []
    assert slack.problems == []


async def test_start_without_thread_ts_is_invalid(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    # The SDK's signature requires thread_ts; the raw method call shows what Slack answers.
    error = await slack_error(
        client.api_call(
            "chat.startStream", json={"channel": "C1", "markdown_text": "hi", **RECIPIENT}
        )
    )

    assert error.response["error"] == "invalid_arguments"
    assert slack.messages == {}
    (problem,) = slack.problems
    assert problem.startswith("chat.startStream (call #1): invalid_arguments")
    assert "thread_ts is required" in problem


async def test_start_in_an_unknown_thread_is_thread_not_found(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    error = await slack_error(
        client.chat_startStream(
            channel="C1", thread_ts="1699999999.000001", markdown_text="hi", **RECIPIENT
        )
    )

    assert error.response["error"] == "thread_not_found"
    assert slack.streams() == []
    (problem,) = slack.problems
    assert problem.startswith("chat.startStream (call #1): thread_not_found")
    assert "no message 1699999999.000001" in problem


async def test_start_in_a_channel_the_bot_is_not_in(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    error = await slack_error(
        client.chat_startStream(channel="C2", thread_ts="1.000001", markdown_text="x", **RECIPIENT)
    )
    assert error.response["error"] == "not_in_channel"
    assert slack.problems == []


async def test_start_markdown_text_over_the_limit_is_too_long(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    error = await slack_error(
        client.chat_startStream(
            channel="C1",
            thread_ts=parent,
            markdown_text="x" * (MARKDOWN_TEXT_LIMIT + 1),
            **RECIPIENT,
        )
    )

    assert error.response["error"] == "msg_too_long"
    assert slack.streams() == []
    (problem,) = slack.problems
    assert problem.startswith("chat.startStream (call #1): msg_too_long")


async def test_refused_streaming_answers_that_error(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    slack.refuse_streaming("feature_not_enabled")

    error = await slack_error(started(client, parent))

    assert error.response.status_code == 200
    assert error.response["error"] == "feature_not_enabled"
    assert slack.streams() == []
    # Posting a plain reply still works: only streaming is off.
    await client.chat_postMessage(channel="C1", thread_ts=parent, text="plain reply")
    assert [m["text"] for m in slack.thread("C1", parent)] == ["plain reply"]
    assert slack.problems == []


async def test_refusal_defaults_to_feature_not_enabled_and_can_name_another_error(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    slack.refuse_streaming()
    assert (await slack_error(started(client, parent))).response["error"] == "feature_not_enabled"
    slack.refuse_streaming("team_not_allowed")
    assert (await slack_error(started(client, parent))).response["error"] == "team_not_allowed"
    assert slack.problems == []


# -- chat.appendStream ----------------------------------------------------------------


async def test_append_adds_text_and_records_each_append(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    ts = await started(client, parent, "Hello")

    first = await client.chat_appendStream(channel="C1", ts=ts, markdown_text=", world")
    await client.chat_appendStream(channel="C1", ts=ts, markdown_text="!")

    assert (first["channel"], first["ts"]) == ("C1", ts)
    message = slack.messages[("C1", ts)]
    assert message["text"] == "Hello, world!"
    assert message["stream_appends"] == [", world", "!"]
    assert message["streaming"] is True
    assert slack.problems == []


async def test_append_without_markdown_text_is_invalid(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    ts = await started(client, parent, "Hello")

    error = await slack_error(client.chat_appendStream(channel="C1", ts=ts))

    assert error.response["error"] == "invalid_arguments"
    message = slack.messages[("C1", ts)]
    assert (message["text"], message["stream_appends"]) == ("Hello", [])
    (problem,) = slack.problems
    assert problem.startswith("chat.appendStream (call #2): invalid_arguments")
    assert "markdown_text is required" in problem


async def test_append_with_empty_markdown_text_is_invalid(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    ts = await started(client, parent)
    error = await slack_error(
        client.api_call("chat.appendStream", json={"channel": "C1", "ts": ts, "markdown_text": ""})
    )
    assert error.response["error"] == "invalid_arguments"
    assert len(slack.problems) == 1


async def test_append_of_the_limit_is_accepted_and_one_more_is_too_long(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    ts = await started(client, parent, "")

    await client.chat_appendStream(channel="C1", ts=ts, markdown_text="a" * MARKDOWN_TEXT_LIMIT)
    assert slack.problems == []
    error = await slack_error(
        client.chat_appendStream(channel="C1", ts=ts, markdown_text="b" * (MARKDOWN_TEXT_LIMIT + 1))
    )

    assert error.response["error"] == "msg_too_long"
    message = slack.messages[("C1", ts)]
    assert message["text"] == "a" * MARKDOWN_TEXT_LIMIT
    assert len(message["stream_appends"]) == 1
    (problem,) = slack.problems
    assert problem.startswith("chat.appendStream (call #3): msg_too_long")
    assert f"over {MARKDOWN_TEXT_LIMIT} characters" in problem


async def test_append_to_an_unknown_message_is_message_not_found(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    error = await slack_error(
        client.chat_appendStream(channel="C1", ts="1699999999.000001", markdown_text="x")
    )
    assert error.response["error"] == "message_not_found"
    assert slack.problems == []


async def test_append_to_a_plain_message_is_not_in_streaming_state(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    posted = await client.chat_postMessage(channel="C1", thread_ts=parent, text="plain")
    error = await slack_error(
        client.chat_appendStream(channel="C1", ts=posted["ts"], markdown_text="x")
    )
    assert error.response["error"] == "message_not_in_streaming_state"
    assert slack.messages[("C1", posted["ts"])]["text"] == "plain"
    assert slack.problems == []


# -- chat.stopStream --------------------------------------------------------------------


async def test_stop_ends_the_stream_and_later_appends_are_refused(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    ts = await started(client, parent, "Hello")
    await client.chat_appendStream(channel="C1", ts=ts, markdown_text=" there")

    stopped = await client.chat_stopStream(channel="C1", ts=ts, markdown_text=".")

    assert (stopped["channel"], stopped["ts"]) == ("C1", ts)
    shown = stopped["message"]
    assert shown["text"] == "Hello there."
    assert shown["streaming"] is False
    assert not {"channel", "history", "stream_appends", "stream_active_at"} & set(shown)
    message = slack.messages[("C1", ts)]
    assert (message["streaming"], message["stream_stopped"]) == (False, True)

    late = await slack_error(client.chat_appendStream(channel="C1", ts=ts, markdown_text="!"))
    assert late.response["error"] == "message_not_in_streaming_state"
    again = await slack_error(client.chat_stopStream(channel="C1", ts=ts))
    assert again.response["error"] == "message_not_in_streaming_state"
    assert slack.messages[("C1", ts)]["text"] == "Hello there."
    assert slack.messages[("C1", ts)]["stream_appends"] == [" there"]
    assert slack.problems == []


async def test_stop_can_leave_blocks_on_the_message(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    ts = await started(client, parent, "Done")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Done*"}}]

    stopped = await client.chat_stopStream(channel="C1", ts=ts, blocks=blocks)

    assert stopped["message"]["blocks"] == blocks
    message = slack.messages[("C1", ts)]
    assert (message["text"], message["blocks"], message["streaming"]) == ("Done", blocks, False)


async def test_stop_with_blocks_on_a_stream_with_text_is_no_problem(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    ts = await started(client, parent, "Done")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Done*"}}]
    await client.chat_stopStream(channel="C1", ts=ts, markdown_text=" here", blocks=blocks)
    assert slack.messages[("C1", ts)]["text"] == "Done here"
    assert slack.problems == []


async def test_stop_with_invalid_blocks_is_refused_and_still_streams(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    ts = await started(client, parent, "Done")

    error = await slack_error(client.chat_stopStream(channel="C1", ts=ts, blocks=[{"type": "x"}]))

    assert error.response["error"] == "invalid_blocks"
    message = slack.messages[("C1", ts)]
    assert message["streaming"] is True and "blocks" not in message
    (problem,) = slack.problems
    assert problem.startswith("chat.stopStream (call #2): invalid_blocks")


async def test_a_refused_stop_changes_nothing(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    ts = await started(client, parent, "Done")
    await slack_error(
        client.chat_stopStream(channel="C1", ts=ts, markdown_text=" late", blocks=[{"type": "x"}])
    )
    assert slack.messages[("C1", ts)]["text"] == "Done"


# -- expiry -------------------------------------------------------------------------------


async def test_expired_streams_answer_not_in_streaming_state(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    first = await started(client, parent, "one")
    second = await started(client, parent, "two")

    slack.expire_streams()

    for ts in (first, second):
        append = await slack_error(client.chat_appendStream(channel="C1", ts=ts, markdown_text="x"))
        assert append.response["error"] == "message_not_in_streaming_state"
        stop = await slack_error(client.chat_stopStream(channel="C1", ts=ts))
        assert stop.response["error"] == "message_not_in_streaming_state"
        message = slack.messages[("C1", ts)]
        assert (message["streaming"], message["stream_expired"]) == (False, True)
        assert message["stream_appends"] == []
    assert slack.problems == []


async def test_a_stream_expires_after_stream_expiry_s_without_an_append(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    slack.stream_expiry_s = 0.0
    ts = await started(client, parent)
    error = await slack_error(client.chat_appendStream(channel="C1", ts=ts, markdown_text="x"))
    assert error.response["error"] == "message_not_in_streaming_state"


async def test_an_expired_stream_is_a_plain_message_chat_update_may_edit(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    ts = await started(client, parent, "half a reply")
    slack.expire_streams()

    await client.chat_update(channel="C1", ts=ts, text="the whole reply")

    assert slack.messages[("C1", ts)]["text"] == "the whole reply"
    assert slack.problems == []


# -- chat.update and streams -----------------------------------------------------------------


async def test_update_mid_stream_is_refused_and_works_after_stop(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    ts = await started(client, parent, "partial")

    error = await slack_error(client.chat_update(channel="C1", ts=ts, text="final"))

    assert error.response["error"] == "cant_update_message"
    assert slack.messages[("C1", ts)]["text"] == "partial"
    (problem,) = slack.problems
    assert problem.startswith("chat.update (call #2): cant_update_message")
    assert "still streaming" in problem

    await client.chat_stopStream(channel="C1", ts=ts)
    updated = await client.chat_update(channel="C1", ts=ts, text="final")

    assert updated["text"] == "final"
    message = slack.messages[("C1", ts)]
    assert message["text"] == "final"
    assert message["history"][-1]["text"] == "partial"
    assert len(slack.problems) == 1  # nothing more


async def test_update_mid_stream_is_refused_whatever_names_the_dm(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    opened = await client.chat_postMessage(channel="U7", text="Your run started")
    dm = str(opened["channel"])
    answer = await client.chat_startStream(channel=dm, thread_ts=opened["ts"], markdown_text="x")

    with pytest.raises(SlackApiError):
        await client.chat_update(channel="U7", ts=answer["ts"], text="edited mid-stream")

    assert slack.messages[(dm, answer["ts"])]["text"] == "x"


# -- rate tier ------------------------------------------------------------------------------


async def test_start_stream_past_its_tier_answers_429_with_retry_after(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    limit = STREAM_TIERS["chat.startStream"]
    assert limit == 20
    for _ in range(limit):
        await started(client, parent)

    error = await slack_error(started(client, parent))

    assert error.response.status_code == 429
    assert error.response["error"] == "ratelimited"
    retry_after = int(error.response.headers["Retry-After"])
    assert 1 <= retry_after <= 61
    assert len(slack.streams()) == limit  # the refused call started nothing
    assert [c.status for c in slack.calls_to("chat.startStream")] == [200] * limit + [429]
    # Other methods have their own budget.
    ts = slack.streams()[0]["ts"]
    await client.chat_appendStream(channel="C1", ts=ts, markdown_text="still fine")
    await client.chat_stopStream(channel="C1", ts=ts)
    assert slack.problems == []


async def test_failed_starts_do_not_count_against_the_tier(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    slack.refuse_streaming()
    for _ in range(STREAM_TIERS["chat.startStream"]):
        await slack_error(started(client, parent))
    slack.streaming_refusal = None

    ts = await started(client, parent)

    assert slack.messages[("C1", ts)]["streaming"] is True


async def test_the_tier_frees_a_minute_later(
    slack: SlackApiEmulator,
    client: AsyncWebClient,
    parent: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tests.fakes.slack_streams as streams_module

    for _ in range(STREAM_TIERS["chat.startStream"]):
        await started(client, parent)
    assert (await slack_error(started(client, parent))).response.status_code == 429

    # The emulator's clock only (the event loop keeps the real one): a minute on.
    later = time.monotonic() + 61.0
    monkeypatch.setattr(streams_module, "time", SimpleNamespace(monotonic=lambda: later))

    ts = await started(client, parent)
    assert slack.messages[("C1", ts)]["streaming"] is True


# -- what tests read ----------------------------------------------------------------------


async def test_streams_lists_started_streams_oldest_first_deleted_included(
    slack: SlackApiEmulator, client: AsyncWebClient, parent: str
) -> None:
    first = await started(client, parent, "first")
    await client.chat_postMessage(channel="C1", thread_ts=parent, text="not a stream")
    second = await started(client, parent, "second")
    third = await started(client, parent, "third")
    await client.chat_stopStream(channel="C1", ts=first)
    await client.chat_delete(channel="C1", ts=first)
    await client.chat_delete(channel="C1", ts=third)

    streams = slack.streams()

    assert [m["ts"] for m in streams] == [first, second, third]
    assert [m["text"] for m in streams] == ["first", "second", "third"]
    assert ("C1", first) not in slack.messages and ("C1", third) not in slack.messages
    assert [m["streaming"] for m in streams] == [False, True, True]
    assert slack.problems == []
