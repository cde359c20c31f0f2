"""The signer must produce what Slack produces, and the payloads must satisfy Bolt.

Signatures are checked against slack_sdk's own ``SignatureVerifier``; payloads are posted
over HTTP to a real Bolt ``AsyncApp`` whose listeners use ``app.command``, ``app.action``
and ``app.view``, with its Web API calls served by the Slack emulator.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import SlackApiEmulator
from tests.fakes.slack_signing import (
    FORM_CONTENT_TYPE,
    SlackRequestSender,
    block_actions,
    new_trigger_id,
    sign,
    slash_command,
    view_submission,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test"


def verifier_accepts(body: bytes, headers: dict[str, str], secret: str = SECRET) -> bool:
    return SignatureVerifier(secret).is_valid_request(body, headers)


def decoded_payload(body: bytes) -> dict[str, Any]:
    return json.loads(parse_qs(body.decode())["payload"][0])


# -- signing ----------------------------------------------------------------------------


def test_signature_matches_slacks_algorithm() -> None:
    body = b"token=x&team_id=T1&text=hello+world"
    headers = sign(SECRET, body, timestamp=1531420618)

    digest = hmac.new(SECRET.encode(), b"v0:1531420618:" + body, hashlib.sha256).hexdigest()
    assert headers == {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": f"v0={digest}",
    }


def test_fresh_signature_is_accepted_by_slack_sdk() -> None:
    body, _ = slash_command(text="run research")
    assert verifier_accepts(body, sign(SECRET, body))


def test_signature_four_minutes_old_is_still_accepted() -> None:
    body, _ = slash_command()
    assert verifier_accepts(body, sign(SECRET, body, timestamp=int(time.time()) - 240))


def test_altered_body_is_rejected() -> None:
    body, _ = slash_command(text="run research")
    headers = sign(SECRET, body)
    assert not verifier_accepts(body.replace(b"research", b"rm+-rf"), headers)


def test_wrong_secret_is_rejected() -> None:
    body, _ = slash_command()
    assert not verifier_accepts(body, sign("another-secret", body))


def test_six_minute_old_timestamp_is_rejected() -> None:
    body, _ = slash_command()
    assert not verifier_accepts(body, sign(SECRET, body, timestamp=int(time.time()) - 360))


# -- payload shapes ------------------------------------------------------------------------


def test_slash_command_is_form_encoded_like_slack() -> None:
    body, content_type = slash_command(
        text="plan a trip & book it", user_id="U7", channel_id="C1", trigger_id="trig"
    )
    fields = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}

    assert content_type == FORM_CONTENT_TYPE
    assert fields["command"] == "/autogen"
    assert fields["text"] == "plan a trip & book it"
    assert fields["is_enterprise_install"] == "false"
    assert fields["trigger_id"] == "trig"
    expected = {"team_domain", "channel_name", "user_name", "api_app_id", "token", "response_url"}
    assert expected <= fields.keys()


def test_trigger_ids_are_unique() -> None:
    assert len({new_trigger_id() for _ in range(100)}) == 100


def test_block_actions_takes_the_button_from_a_stored_message() -> None:
    message = {
        "type": "message",
        "channel": "C1",
        "ts": "1700000000.000100",
        "thread_ts": "1700000000.000050",
        "text": "Approve?",
        "history": [],
        "blocks": [
            {
                "type": "actions",
                "block_id": "approval",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "approve",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "value": "run-12",
                    }
                ],
            }
        ],
    }
    body, _ = block_actions(action_id="approve", message=message, user_id="U9")
    payload = decoded_payload(body)

    assert payload["type"] == "block_actions"
    assert payload["actions"][0]["block_id"] == "approval"
    assert payload["actions"][0]["value"] == "run-12"
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1700000000.000100",
        "channel_id": "C1",
        "is_ephemeral": False,
        "thread_ts": "1700000000.000050",
    }
    assert "history" not in payload["message"]
    assert payload["user"]["id"] == "U9"


def test_view_submission_state_shorthand() -> None:
    body, _ = view_submission(callback_id="cred_modal", state_values={"key": {"value": "sk-1"}})
    view = decoded_payload(body)["view"]
    assert view["callback_id"] == "cred_modal"
    assert view["state"]["values"] == {
        "key": {"value": {"type": "plain_text_input", "value": "sk-1"}}
    }


# -- Bolt accepts them over HTTP -----------------------------------------------------------


@dataclass
class BoltHarness:
    """A Bolt app served on a local port, noting what each listener received."""

    url: str
    seen: dict[str, Any] = field(default_factory=dict)


def build_app(slack: SlackApiEmulator, seen: dict[str, Any]) -> AsyncApp:
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    app = AsyncApp(signing_secret=SECRET, client=client)

    @app.command("/autogen")
    async def on_command(ack: Any, command: dict[str, Any], context: Any, respond: Any) -> None:
        seen["command"] = (command["text"], context.user_id, context.channel_id, context.team_id)
        await ack()
        await respond(text=f"Starting: {command['text']}")

    @app.action("approve")
    async def on_approve(ack: Any, action: dict[str, Any], body: dict[str, Any]) -> None:
        seen["action"] = (action["value"], body["container"]["message_ts"], body["user"]["id"])
        await ack()

    @app.view("cred_modal")
    async def on_submit(ack: Any, view: dict[str, Any]) -> None:
        value = view["state"]["values"]["key"]["value"]["value"]
        seen["view"] = (value, view["private_metadata"])
        if value == "bad":
            await ack(response_action="errors", errors={"key": "Not a key"})
        else:
            await ack()

    return app


@pytest.fixture
async def slack() -> AsyncIterator[SlackApiEmulator]:
    async with SlackApiEmulator(bot_token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
async def bolt(slack: SlackApiEmulator) -> AsyncIterator[BoltHarness]:
    seen: dict[str, Any] = {}
    app = build_app(slack, seen)
    echoed: list[dict[str, str]] = []

    async def events(request: web.Request) -> web.Response:
        echoed.append(dict(request.headers))
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    seen["headers"] = echoed
    try:
        yield BoltHarness(url=f"http://127.0.0.1:{port}/slack/events", seen=seen)
    finally:
        await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[SlackRequestSender]:
    async with SlackRequestSender() as opened:
        yield opened


async def test_bolt_runs_the_command_listener(
    bolt: BoltHarness, slack: SlackApiEmulator, sender: SlackRequestSender
) -> None:
    url = slack.new_response_url()
    body, content_type = slash_command(
        text="summarise the repo", user_id="U7", channel_id="C1", team_id="T1", response_url=url
    )
    status, _, elapsed = await sender.post(bolt.url, body, content_type, SECRET)

    assert status == 200
    assert elapsed > 0  # the sender measures each answer (the benchmark reports it)
    assert bolt.seen["command"] == ("summarise the repo", "U7", "C1", "T1")
    hook = url.rsplit("/", 1)[1]
    await slack.wait_for(lambda s: s.responses[hook])
    assert slack.responses[hook][0]["text"] == "Starting: summarise the repo"
    assert slack.problems == []


async def test_bolt_rejects_a_bad_signature(bolt: BoltHarness, sender: SlackRequestSender) -> None:
    body, content_type = slash_command()
    status, _, _ = await sender.post(bolt.url, body, content_type, "not-the-secret")
    assert status == 401
    assert "command" not in bolt.seen


async def test_bolt_rejects_a_stale_timestamp(
    bolt: BoltHarness, sender: SlackRequestSender
) -> None:
    body, content_type = slash_command()
    stale = int(time.time()) - 360
    status, _, _ = await sender.post(bolt.url, body, content_type, SECRET, timestamp=stale)
    assert status == 401


async def test_bolt_runs_the_action_listener(
    bolt: BoltHarness, slack: SlackApiEmulator, sender: SlackRequestSender
) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    button = {
        "type": "button",
        "action_id": "approve",
        "text": {"type": "plain_text", "text": "Approve"},
        "value": "run-12",
    }
    posted = await client.chat_postMessage(
        channel="C1", text="Approve?", blocks=[{"type": "actions", "elements": [button]}]
    )
    message = slack.messages[("C1", posted["ts"])]

    body, content_type = block_actions(action_id="approve", message=message, user_id="U3")
    status, _, _ = await sender.post(bolt.url, body, content_type, SECRET)

    assert status == 200
    assert bolt.seen["action"] == ("run-12", posted["ts"], "U3")


async def test_bolt_runs_the_view_listener_and_returns_errors(
    bolt: BoltHarness, slack: SlackApiEmulator, sender: SlackRequestSender
) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    view = {
        "type": "modal",
        "callback_id": "cred_modal",
        "private_metadata": "run-12",
        "title": {"type": "plain_text", "text": "API key"},
        "submit": {"type": "plain_text", "text": "Save"},
        "blocks": [
            {
                "type": "input",
                "block_id": "key",
                "label": {"type": "plain_text", "text": "Key"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    }
    await client.views_open(trigger_id=new_trigger_id(), view=view)
    opened = slack.views_opened[-1]

    good, content_type = view_submission(view=opened, state_values={"key": {"value": "sk-1"}})
    status, text, _ = await sender.post(bolt.url, good, content_type, SECRET)
    assert (status, text) == (200, "")
    assert bolt.seen["view"] == ("sk-1", "run-12")

    bad, _ = view_submission(view=opened, state_values={"key": {"value": "bad"}})
    status, text, _ = await sender.post(bolt.url, bad, content_type, SECRET)
    assert status == 200
    assert json.loads(text) == {"response_action": "errors", "errors": {"key": "Not a key"}}


async def test_retry_headers_are_sent(bolt: BoltHarness, sender: SlackRequestSender) -> None:
    body, content_type = slash_command()
    await sender.post(bolt.url, body, content_type, SECRET, retry_num=2)
    await sender.post(bolt.url, body, content_type, SECRET)

    with_retry, without = bolt.seen["headers"]
    assert with_retry["X-Slack-Retry-Num"] == "2"
    assert with_retry["X-Slack-Retry-Reason"] == "http_timeout"
    assert "X-Slack-Retry-Num" not in without
    assert with_retry["Content-Type"] == FORM_CONTENT_TYPE
