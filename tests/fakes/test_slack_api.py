"""The Slack emulator must answer the real slack_sdk client the way Slack does.

Every test drives the emulator through ``AsyncWebClient`` over HTTP, so a mismatch with
how the SDK encodes requests or reads answers (URL, JSON vs form, headers) fails here.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack_api import (
    SlackApiEmulator,
    find_block_problems,
    find_view_problems,
)

TOKEN = "xoxb-test"


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def modal(**overrides: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "cred_modal",
        "title": plain("API key"),
        "submit": plain("Save"),
        "close": plain("Cancel"),
        "private_metadata": json.dumps({"run": 1}),
        "blocks": [
            {
                "type": "input",
                "block_id": "key",
                "label": plain("Key"),
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    }
    view.update(overrides)
    return view


@pytest.fixture
async def slack() -> AsyncIterator[SlackApiEmulator]:
    async with SlackApiEmulator(bot_token=TOKEN, member_channels={"C1"}) as emulator:
        yield emulator


@pytest.fixture
def client(slack: SlackApiEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=slack.api_url)


async def slack_error(call: Any) -> SlackApiError:
    """Await ``call`` expecting the SDK to raise, and hand back the error to inspect."""
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


# -- basics -------------------------------------------------------------------


async def test_api_url_is_what_the_sdk_expects(slack: SlackApiEmulator) -> None:
    assert slack.api_url.startswith("http://127.0.0.1:")
    assert slack.api_url.endswith("/api/")


async def test_auth_test_identifies_the_bot(client: AsyncWebClient) -> None:
    answer = await client.auth_test()
    assert answer["user_id"] == "UBOT"
    assert answer["team_id"] == "T1"
    assert answer["bot_id"] == "BBOT"
    assert answer["url"].startswith("https://")


async def test_wrong_token_is_invalid_auth(slack: SlackApiEmulator) -> None:
    error = await slack_error(
        AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test()
    )
    assert error.response["error"] == "invalid_auth"


async def test_missing_token_is_not_authed(slack: SlackApiEmulator) -> None:
    error = await slack_error(AsyncWebClient(base_url=slack.api_url).auth_test())
    assert error.response["error"] == "not_authed"


async def test_unknown_method(client: AsyncWebClient) -> None:
    error = await slack_error(client.api_call("chat.doesNotExist", json={}))
    assert error.response["error"] == "unknown_method"


async def test_server_stops_on_exit() -> None:
    async with SlackApiEmulator() as emulator:
        url = emulator.api_url
    with pytest.raises(Exception):  # noqa: B017 - any connection error proves it is closed
        await AsyncWebClient(token=TOKEN, base_url=url, retry_handlers=[]).auth_test()


# -- messages -------------------------------------------------------------------


async def test_post_message_is_stored_with_increasing_ts(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    first = await client.chat_postMessage(channel="C1", text="one")
    second = await client.chat_postMessage(channel="C1", text="two", blocks=[section("*two*")])

    assert first["channel"] == "C1"
    assert first["message"]["text"] == "one"
    assert float(second["ts"]) > float(first["ts"])
    assert first["ts"] == "1700000000.000100"
    stored = slack.messages[("C1", second["ts"])]
    assert stored["blocks"] == [section("*two*")]
    assert stored["user"] == "UBOT"
    assert [m["text"] for m in slack.channel_messages("C1")] == ["one", "two"]
    assert slack.problems == []


async def test_form_encoded_blocks_are_decoded(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    blocks = [section("from a form")]
    data = {"channel": "C1", "text": "fallback", "blocks": json.dumps(blocks)}
    answer = await client.api_call("chat.postMessage", data=data)

    call = slack.calls_to("chat.postMessage")[-1]
    assert call.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert call.params["blocks"] == blocks
    assert slack.messages[("C1", answer["ts"])]["blocks"] == blocks


async def test_update_replaces_content_and_keeps_history(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="Running…")
    updated = await client.chat_update(
        channel="C1", ts=posted["ts"], text="Done", blocks=[section("*Done*")]
    )

    message = slack.messages[("C1", posted["ts"])]
    assert updated["ts"] == posted["ts"]
    assert (message["text"], message["blocks"]) == ("Done", [section("*Done*")])
    assert message["history"] == [{"text": "Running…", "blocks": None, "attachments": None}]


async def test_update_of_unknown_message_fails(client: AsyncWebClient) -> None:
    error = await slack_error(client.chat_update(channel="C1", ts="1.000001", text="x"))
    assert error.response["error"] == "message_not_found"


async def test_update_of_a_human_message_fails(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    ts = slack.add_user_message("C1", "hello bot")
    error = await slack_error(client.chat_update(channel="C1", ts=ts, text="edited"))
    assert error.response["error"] == "cant_update_message"


async def test_thread_replies_come_back_in_order(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="C1", text="parent")
    first = await client.chat_postMessage(channel="C1", text="r1", thread_ts=parent["ts"])
    # Replying with a reply's ts lands in the same thread, as in Slack.
    await client.chat_postMessage(channel="C1", text="r2", thread_ts=first["ts"])
    await client.chat_postMessage(channel="C1", text="elsewhere")

    replies = slack.thread("C1", parent["ts"])
    assert [r["text"] for r in replies] == ["r1", "r2"]
    assert all(r["thread_ts"] == parent["ts"] for r in replies)
    assert slack.messages[("C1", parent["ts"])]["reply_count"] == 2
    assert [m["text"] for m in slack.channel_messages("C1")] == ["parent", "elsewhere"]


async def test_reply_to_unknown_thread_is_a_problem(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel="C1", text="orphan", thread_ts="1699999999.000001")
    assert len(slack.problems) == 1
    assert "thread_ts" in slack.problems[0]


@pytest.mark.parametrize(
    ("channel", "error"),
    [("C2", "not_in_channel"), ("G9", "not_in_channel"), ("#general", "channel_not_found")],
)
async def test_channels_the_bot_cannot_post_in(
    slack: SlackApiEmulator, client: AsyncWebClient, channel: str, error: str
) -> None:
    failure = await slack_error(client.chat_postMessage(channel=channel, text="hi"))
    assert failure.response["error"] == error
    assert slack.messages == {}


async def test_posting_to_a_user_opens_a_dm(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    answer = await client.chat_postMessage(channel="U42", text="psst")
    assert answer["channel"].startswith("D")
    assert (answer["channel"], answer["ts"]) in slack.messages


@pytest.mark.filterwarnings("ignore:The top-level `text` argument:UserWarning")
async def test_message_needs_text_or_blocks(client: AsyncWebClient) -> None:
    error = await slack_error(client.chat_postMessage(channel="C1"))
    assert error.response["error"] == "no_text"


async def test_ephemeral_returns_message_ts(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    answer = await client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert answer["message_ts"]
    assert slack.ephemerals == [
        {
            "channel": "C1",
            "user": "U1",
            "text": "only you",
            "blocks": None,
            "thread_ts": None,
            "message_ts": answer["message_ts"],
        }
    ]
    assert slack.messages == {}


async def test_permalink_and_conversation_info(client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="C1", text="parent")
    reply = await client.chat_postMessage(channel="C1", text="reply", thread_ts=parent["ts"])

    link = await client.chat_getPermalink(channel="C1", message_ts=reply["ts"])
    assert link["permalink"].endswith(
        f"p{reply['ts'].replace('.', '')}?thread_ts={parent['ts']}&cid=C1"
    )
    info = await client.conversations_info(channel="C1")
    assert info["channel"]["id"] == "C1"
    assert info["channel"]["is_member"] is True
    missing = await slack_error(client.chat_getPermalink(channel="C1", message_ts="1.000002"))
    assert missing.response["error"] == "message_not_found"


# -- Block Kit validation ------------------------------------------------------------


@pytest.mark.parametrize(
    "blocks",
    [
        pytest.param([{"type": "sectoin", "text": plain("typo")}], id="unknown-block-type"),
        pytest.param([section("x" * 3001)], id="section-text-too-long"),
        pytest.param(
            [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], id="mrkdwn-header"
        ),
        pytest.param([{"type": "actions", "elements": []}], id="empty-actions"),
        pytest.param([{**section("x"), "colour": "red"}], id="unknown-field"),
        pytest.param([{"type": "section", "text": "bare string"}], id="string-for-text-object"),
        pytest.param([section("")], id="empty-text"),
        pytest.param(
            [{"type": "actions", "elements": [{"type": "buton", "action_id": "a"}]}],
            id="unknown-element-type",
        ),
        pytest.param(
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": plain("Go"),
                            "action_id": "a",
                            "value": "v" * 2001,
                        }
                    ],
                }
            ],
            id="button-value-too-long",
        ),
        pytest.param([{"type": "divider", "block_id": "b" * 256}], id="block-id-too-long"),
        pytest.param([{"type": "divider"}] * 51, id="more-than-50-blocks"),
    ],
)
async def test_invalid_blocks_are_rejected_and_reported(
    slack: SlackApiEmulator, client: AsyncWebClient, blocks: list[dict[str, Any]]
) -> None:
    error = await slack_error(client.chat_postMessage(channel="C1", text="fallback", blocks=blocks))

    assert error.response["error"] == "invalid_blocks"
    assert error.response["response_metadata"]["messages"]
    assert slack.messages == {}
    assert len(slack.problems) == 1
    assert slack.problems[0].startswith("chat.postMessage (call #1): invalid_blocks")


async def test_a_realistic_rich_message_is_accepted_without_problems(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    blocks = [
        {"type": "header", "text": plain("Run #12 needs approval")},
        section("*Plan:* apply `patch.diff`"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Team*\nresearch"}]},
        {"type": "divider"},
        {
            "type": "actions",
            "block_id": "approval",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "text": plain("Approve"),
                    "style": "primary",
                    "value": "run-12",
                },
                {
                    "type": "button",
                    "action_id": "reject",
                    "text": plain("Reject"),
                    "style": "danger",
                    "value": "run-12",
                    "confirm": {
                        "title": plain("Reject?"),
                        "text": {"type": "mrkdwn", "text": "The run stops."},
                        "confirm": plain("Reject"),
                        "deny": plain("Keep"),
                    },
                },
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "cost: $0.02"}]},
    ]
    await client.chat_postMessage(channel="C1", text="Run #12 needs approval", blocks=blocks)
    assert slack.problems == []


async def test_text_over_4000_characters_is_too_long(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    error = await slack_error(client.chat_postMessage(channel="C1", text="x" * 4001))
    assert error.response["error"] == "msg_too_long"
    assert slack.problems


async def test_blocks_json_over_12000_characters_is_too_long(client: AsyncWebClient) -> None:
    blocks = [section("y" * 2900) for _ in range(5)]  # each block valid, together too big
    error = await slack_error(client.chat_postMessage(channel="C1", text="x", blocks=blocks))
    assert error.response["error"] == "msg_blocks_too_long"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument:UserWarning")
async def test_blocks_without_fallback_text_are_accepted_but_flagged(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    answer = await client.chat_postMessage(channel="C1", blocks=[section("no fallback")])
    assert answer["ok"]
    assert len(slack.problems) == 1
    assert "no_fallback_text" in slack.problems[0]


async def test_update_is_validated_too(slack: SlackApiEmulator, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C1", text="before")
    error = await slack_error(
        client.chat_update(channel="C1", ts=posted["ts"], text="t", blocks=[{"type": "nope"}])
    )
    assert error.response["error"] == "invalid_blocks"
    assert slack.messages[("C1", posted["ts"])]["text"] == "before"


def test_validators_accept_good_payloads_and_name_the_broken_field() -> None:
    assert find_block_problems([section("fine")]) == []
    assert find_view_problems(modal()) == []
    problems = find_block_problems([section("fine"), {"type": "image", "alt_text": "x"}])
    assert problems == ["blocks[1]: image blocks need image_url or slack_file"]


# -- modals ---------------------------------------------------------------------------


async def test_views_open_assigns_ids_and_records(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    first = await client.views_open(trigger_id="t-1", view=modal())
    second = await client.views_open(trigger_id="t-2", view=modal())

    assert (first["view"]["id"], second["view"]["id"]) == ("V0001", "V0002")
    assert first["view"]["callback_id"] == "cred_modal"
    assert first["view"]["state"] == {"values": {}}
    assert [v["id"] for v in slack.views_opened] == ["V0001", "V0002"]
    assert slack.problems == []


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(modal(title=plain("A title that is far too long")), id="title-over-24"),
        pytest.param(modal(submit=plain("Submit this form right now")), id="submit-over-24"),
        pytest.param(modal(close=plain("Close and discard the run")), id="close-over-24"),
        pytest.param(modal(private_metadata="m" * 3001), id="metadata-over-3000"),
        pytest.param(modal(callback_id="c" * 256), id="callback-id-over-255"),
        pytest.param(modal(blocks=[{"type": "divider"}] * 101), id="more-than-100-blocks"),
        pytest.param({k: v for k, v in modal().items() if k != "title"}, id="no-title"),
        pytest.param(
            {k: v for k, v in modal().items() if k != "submit"}, id="input-without-submit"
        ),
        pytest.param(modal(blocks=[{"type": "unknown"}]), id="unknown-block"),
    ],
)
async def test_invalid_modals_are_rejected(
    slack: SlackApiEmulator, client: AsyncWebClient, view: dict[str, Any]
) -> None:
    error = await slack_error(client.views_open(trigger_id="t-1", view=view))
    assert error.response["error"] == "invalid_arguments"
    assert slack.views == {}
    assert len(slack.problems) == 1


async def test_a_trigger_id_works_once(slack: SlackApiEmulator, client: AsyncWebClient) -> None:
    await client.views_open(trigger_id="t-1", view=modal())
    error = await slack_error(client.views_open(trigger_id="t-1", view=modal()))
    assert error.response["error"] == "trigger_exchanged"


async def test_views_update_and_push(slack: SlackApiEmulator, client: AsyncWebClient) -> None:
    opened = (await client.views_open(trigger_id="t-1", view=modal()))["view"]
    updated = await client.views_update(
        view_id=opened["id"], hash=opened["hash"], view=modal(title=plain("Saved"))
    )
    assert updated["view"]["title"] == plain("Saved")
    assert slack.views[opened["id"]]["title"] == plain("Saved")

    stale = await slack_error(
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal())
    )
    assert stale.response["error"] == "hash_conflict"
    unknown = await slack_error(client.views_update(view_id="V9999", view=modal()))
    assert unknown.response["error"] == "not_found"

    pushed = await client.views_push(trigger_id="t-2", view=modal(callback_id="step2"))
    assert pushed["view"]["id"] == "V0002"
    assert slack.views_pushed[0]["callback_id"] == "step2"


# -- failure injection ---------------------------------------------------------------


async def test_rate_limit_is_seen_by_the_client_with_retry_after(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    slack.fail("chat.postMessage", status=429, retry_after=7, times=1)

    error = await slack_error(client.chat_postMessage(channel="C1", text="hi"))
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response["error"] == "ratelimited"
    assert slack.messages == {}
    assert slack.calls_to("chat.postMessage")[0].status == 429

    retried = await client.chat_postMessage(channel="C1", text="hi")
    assert retried["ok"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200]


async def test_posting_past_the_channels_limit_is_a_429_for_that_channel_only(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    """Slack's special posting limit (about one message a second per channel, short bursts
    allowed), set to 2 a second here: the third post within a second to C1 is refused;
    another channel is not held up; a second later C1 takes posts again."""
    slack.member_channels.add("C2")
    slack.posts_per_channel_s = 2
    for _ in range(2):
        assert (await client.chat_postMessage(channel="C1", text="hi"))["ok"]
    error = await slack_error(client.chat_postMessage(channel="C1", text="too soon"))
    assert error.response.status_code == 429 and error.response.headers["Retry-After"] == "1"
    assert (await client.chat_postMessage(channel="C2", text="elsewhere"))["ok"]
    await asyncio.sleep(1.05)
    assert (await client.chat_postMessage(channel="C1", text="again"))["ok"]
    assert len(slack.channel_messages("C1")) == 3


async def test_sdk_rate_limit_handler_retries_after_the_header(slack: SlackApiEmulator) -> None:
    retrying = AsyncWebClient(
        token=TOKEN,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    slack.fail("chat.postMessage", status=429, retry_after=0, times=2)

    answer = await retrying.chat_postMessage(channel="C1", text="eventually")
    assert answer["ok"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 429, 200]
    assert len(slack.messages) == 1


@pytest.mark.parametrize(
    ("status", "error"), [(500, "internal_error"), (503, "service_unavailable")]
)
async def test_server_errors(
    slack: SlackApiEmulator, client: AsyncWebClient, status: int, error: str
) -> None:
    slack.fail("views.open", status=status, times=1)
    failure = await slack_error(client.views_open(trigger_id="t-1", view=modal()))
    assert failure.response.status_code == status
    assert failure.response["error"] == error
    # The failed call consumed nothing: the same trigger still opens the modal.
    assert (await client.views_open(trigger_id="t-1", view=modal()))["ok"]


async def test_a_slow_call_is_seen_in_flight_then_succeeds(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    slack.slow("chat.postMessage", 1.0)
    assert slack.in_flight == {} and slack.held == []
    posting = asyncio.create_task(client.chat_postMessage(channel="C1", text="held"))
    await slack.wait_for(lambda s: s.in_flight.get("chat.postMessage"))
    # Held: Slack has not acted on it yet.
    assert slack.held == ["chat.postMessage"] and slack.in_flight == {"chat.postMessage": 1}
    assert slack.messages == {} and slack.calls_to("chat.postMessage") == []
    answer = await posting
    assert answer["ok"] and [m["text"] for m in slack.channel_messages("C1")] == ["held"]
    assert slack.in_flight == {"chat.postMessage": 0}
    # Only the next call was held.
    await client.chat_postMessage(channel="C1", text="not held")
    assert slack.held == ["chat.postMessage"] and slack.in_flight == {"chat.postMessage": 0}


async def outcome_pattern(seed: int, calls: int = 40) -> list[int]:
    async with SlackApiEmulator(bot_token=TOKEN) as emulator:
        emulator.fail_ratio("chat.postMessage", ratio=0.3, status=429, retry_after=0, seed=seed)
        client = AsyncWebClient(token=TOKEN, base_url=emulator.api_url)
        for number in range(calls):
            try:
                await client.chat_postMessage(channel="C1", text=f"m{number}")
            except SlackApiError:
                pass
        return [call.status for call in emulator.calls]


async def test_fail_ratio_is_deterministic_per_seed() -> None:
    first = await outcome_pattern(seed=1234)
    again = await outcome_pattern(seed=1234)
    other = await outcome_pattern(seed=99)

    rng = random.Random(1234)
    expected = [429 if rng.random() < 0.3 else 200 for _ in range(40)]
    assert first == again == expected
    assert other != first
    assert 0 < first.count(429) < 40


# -- response_url ---------------------------------------------------------------------


async def test_response_url_posts_are_recorded(slack: SlackApiEmulator) -> None:
    url = slack.new_response_url()
    hook_id = url.rsplit("/", 1)[1]
    assert url.startswith(slack.base_url + "/response/")

    answer = await AsyncWebhookClient(url).send(text="Working on it", response_type="ephemeral")
    assert (answer.status_code, answer.body) == (200, "ok")
    assert slack.responses[hook_id] == [{"text": "Working on it", "response_type": "ephemeral"}]
    assert slack.calls[-1].method == "response_url"
    assert slack.problems == []


async def test_response_url_payloads_are_validated(slack: SlackApiEmulator) -> None:
    url = slack.new_response_url()
    answer = await AsyncWebhookClient(url).send(text="x", blocks=[{"type": "bogus"}])
    assert answer.status_code == 400
    assert answer.body == "invalid_blocks"
    assert slack.responses[url.rsplit("/", 1)[1]] == []
    assert "response_url" in slack.problems[0]


async def test_response_url_replaces_the_original_message(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="Approve?")
    url = slack.new_response_url(channel="C1", message_ts=posted["ts"])

    await AsyncWebhookClient(url).send(text="Approved by <@U1>", replace_original=True)
    assert slack.messages[("C1", posted["ts"])]["text"] == "Approved by <@U1>"


async def test_response_url_allows_five_uses(slack: SlackApiEmulator) -> None:
    webhook = AsyncWebhookClient(slack.new_response_url())
    statuses = [(await webhook.send(text=f"update {n}")).status_code for n in range(6)]
    assert statuses == [200] * 5 + [404]
    assert len(slack.problems) == 1


# -- waiting and records ------------------------------------------------------------------


async def test_wait_for_returns_the_predicate_value(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel="C1", text="hello")
    found = await slack.wait_for(lambda s: s.calls_to("chat.postMessage"), timeout=1)
    assert found[0].params["text"] == "hello"


async def test_wait_for_treats_missing_items_as_not_yet(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="C1", text="parent")
    with pytest.raises(AssertionError):
        await slack.wait_for(lambda s: s.thread("C1", parent["ts"])[0], timeout=0.1)


async def test_wait_for_times_out_with_a_summary(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel="C1", text="hello")
    with pytest.raises(AssertionError) as caught:
        await slack.wait_for(lambda s: len(s.messages) > 5, timeout=0.1)
    assert "chat.postMessage -> 200 ok" in str(caught.value)


async def test_calls_record_decoded_params_headers_and_time(
    slack: SlackApiEmulator, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel="C1", text="t", blocks=[section("b")])
    await client.chat_postMessage(channel="C1", text="t2")
    first, second = slack.calls
    assert first.method == "chat.postMessage"
    assert first.params["blocks"] == [section("b")]
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first.response["ok"] is True
    assert first.at <= second.at
