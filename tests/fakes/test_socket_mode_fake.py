"""The emulator's Socket Mode must work with the real ``slack_sdk`` Socket Mode client.

Each test connects ``slack_sdk.socket_mode.aiohttp.SocketModeClient`` (what Bolt's
``AsyncSocketModeHandler`` uses) to the emulator: the URL comes from
``apps.connections.open`` over HTTP, the websocket is real, and envelopes and acks are
parsed by the SDK itself, so a mismatch with Slack's wire format fails here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import SlackApiEmulator

BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"

Listener = Callable[[SocketModeClient, SocketModeRequest], Awaitable[None]]


@pytest.fixture
async def slack() -> AsyncIterator[SlackApiEmulator]:
    async with SlackApiEmulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as emulator:
        yield emulator


class Connected:
    """A connected SDK client plus everything it saw, for assertions."""

    def __init__(self, client: SocketModeClient) -> None:
        self.client = client
        self.messages: list[dict[str, Any]] = []
        self.requests: list[SocketModeRequest] = []


@pytest.fixture
async def connect(
    slack: SlackApiEmulator,
) -> AsyncIterator[Callable[[Listener | None], Awaitable[Connected]]]:
    """Connect a real SocketModeClient whose request listener is ``listener``."""
    opened: list[SocketModeClient] = []

    async def _connect(listener: Listener | None = None) -> Connected:
        client = SocketModeClient(
            app_token=APP_TOKEN,
            web_client=AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url),
            ping_interval=1,
        )
        opened.append(client)
        seen = Connected(client)

        async def record_message(_client: Any, message: dict[str, Any], _raw: Any) -> None:
            seen.messages.append(message)

        async def record_request(sdk_client: Any, request: SocketModeRequest) -> None:
            seen.requests.append(request)
            if listener is not None:
                await listener(sdk_client, request)

        client.message_listeners.append(record_message)
        client.socket_mode_request_listeners.append(record_request)
        await asyncio.wait_for(client.connect(), timeout=5)
        return seen

    yield _connect
    for client in opened:
        await client.close()


async def ack_empty(client: SocketModeClient, request: SocketModeRequest) -> None:
    await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))


def command_payload(text: str = "do it") -> dict[str, str]:
    """A slash command as it arrives in a Socket Mode envelope: its form fields, as strings."""
    return {
        "token": "legacy",
        "team_id": "T1",
        "team_domain": "autogen-test",
        "channel_id": "C1",
        "channel_name": "general",
        "user_id": "U1",
        "user_name": "alice",
        "command": "/autogen",
        "text": text,
        "api_app_id": "AAPP",
        "is_enterprise_install": "false",
        "response_url": "http://127.0.0.1:9/response/unset",
        "trigger_id": "1.2.3",
    }


# -- apps.connections.open ----------------------------------------------------


async def test_connections_open_needs_the_app_token(slack: SlackApiEmulator) -> None:
    web = AsyncWebClient(base_url=slack.api_url)
    response = await web.apps_connections_open(app_token=APP_TOKEN)
    assert response["url"].startswith(f"ws://127.0.0.1:{slack.base_url.rsplit(':', 1)[1]}/")
    assert "/socket-mode/" in response["url"]

    wrong = await _error(web.apps_connections_open(app_token="xapp-wrong"))
    bot = await _error(web.apps_connections_open(app_token=BOT_TOKEN))
    assert (wrong, bot) == ("invalid_auth", "not_allowed_token_type")
    app_token_elsewhere = AsyncWebClient(token=APP_TOKEN, base_url=slack.api_url)
    assert await _error(app_token_elsewhere.auth_test()) == "not_allowed_token_type"

    calls = slack.calls_to("apps.connections.open")
    assert [call.ok for call in calls] == [True, False, False]
    assert calls[0].headers["Authorization"] == f"Bearer {APP_TOKEN}"


async def test_without_an_app_token_socket_mode_is_refused() -> None:
    async with SlackApiEmulator(bot_token=BOT_TOKEN) as slack:
        web = AsyncWebClient(base_url=slack.api_url)
        assert await _error(web.apps_connections_open(app_token=APP_TOKEN)) == "invalid_auth"
        assert await AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url).auth_test()


async def test_an_unissued_socket_url_is_refused(slack: SlackApiEmulator) -> None:
    url = slack.base_url.replace("http://", "ws://") + "/socket-mode/made-up"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(url)
    assert caught.value.status == 401
    assert not slack.socket_connected and slack.socket_connections == []


# -- connection and envelopes ---------------------------------------------------


async def test_client_connects_and_is_greeted_with_hello(
    slack: SlackApiEmulator, connect: Callable[..., Awaitable[Connected]]
) -> None:
    assert not slack.socket_connected
    seen = await connect()
    connection = await slack.wait_for_socket(timeout=5)
    assert slack.socket_connected and connection.open
    hello = await slack.wait_for(lambda s: seen.messages and seen.messages[0], timeout=5)
    assert hello["type"] == "hello"
    assert hello["connection_info"] == {"app_id": slack.app_id}
    assert seen.requests == []  # hello is not an envelope
    assert len(slack.calls_to("apps.connections.open")) == 1


async def test_slash_command_envelope_is_parsed_by_the_sdk_and_acked_with_payload(
    slack: SlackApiEmulator, connect: Callable[..., Awaitable[Connected]]
) -> None:
    async def answer(client: SocketModeClient, request: SocketModeRequest) -> None:
        text = f"got {request.payload['text']}"
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload={"text": text})
        )

    seen = await connect(answer)
    ack = await slack.socket_send("slash_commands", command_payload("hello there"))

    (request,) = seen.requests
    assert request.type == "slash_commands"
    assert request.payload == command_payload("hello there")
    assert request.accepts_response_payload is True
    assert ack == {"envelope_id": request.envelope_id, "payload": {"text": "got hello there"}}
    (record,) = slack.socket_envelopes
    assert record.envelope_id == request.envelope_id and record.ack == ack
    assert record.acked_at is not None and record.acked_at >= record.sent_at
    assert slack.problems == []


async def test_interactive_envelopes_say_whether_they_take_a_response(
    slack: SlackApiEmulator, connect: Callable[..., Awaitable[Connected]]
) -> None:
    seen = await connect(ack_empty)
    click = {"type": "block_actions", "actions": [{"action_id": "a"}], "user": {"id": "U1"}}
    submit = {"type": "view_submission", "view": {"id": "V1"}, "user": {"id": "U1"}}
    first = await slack.socket_send("interactive", click)
    second = await slack.socket_send("interactive", submit)
    assert [r.accepts_response_payload for r in seen.requests] == [False, True]
    assert [r.payload for r in seen.requests] == [click, submit]
    assert first["envelope_id"] != second["envelope_id"]
    assert "payload" not in first and "payload" not in second
    assert slack.problems == []


async def test_missing_ack_times_out_with_a_summary(
    slack: SlackApiEmulator, connect: Callable[..., Awaitable[Connected]]
) -> None:
    async def ignore(_client: SocketModeClient, _request: SocketModeRequest) -> None:
        return None

    await connect(ignore)
    with pytest.raises(AssertionError) as caught:
        await slack.socket_send("slash_commands", command_payload(), timeout=0.3)
    assert "did not acknowledge" in str(caught.value) and "within 0.3s" in str(caught.value)
    assert "not acknowledged" in str(caught.value)  # the summary lists the envelope
    assert any("no_ack" in p for p in slack.problems)


async def test_acks_slack_would_refuse_are_problems(
    slack: SlackApiEmulator, connect: Callable[..., Awaitable[Connected]]
) -> None:
    bad_blocks = [{"type": "section"}]  # a section needs text or fields

    async def answer(client: SocketModeClient, request: SocketModeRequest) -> None:
        payload = {"text": "x", "blocks": bad_blocks}
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=payload)
        )
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    await connect(answer)
    await slack.socket_send("slash_commands", command_payload())
    await slack.socket_send("interactive", {"type": "block_actions", "actions": []})
    await slack.wait_for(lambda s: len(s.problems) >= 4, timeout=5)
    kinds = sorted(p.split(": ")[1] for p in slack.problems)
    assert kinds == [
        "duplicate_ack",
        "duplicate_ack",
        "invalid_blocks",
        "response_payload_ignored",
    ], slack.problems


async def test_view_submission_response_actions_are_checked(
    slack: SlackApiEmulator, connect: Callable[..., Awaitable[Connected]]
) -> None:
    answers = iter(
        [
            {"response_action": "errors", "errors": {"key_block": "Too short."}},
            {"response_action": "errors", "errors": {}},
            {"response_action": "dance"},
            {"response_action": "update", "view": {"type": "modal", "blocks": []}},
        ]
    )

    async def answer(client: SocketModeClient, request: SocketModeRequest) -> None:
        payload = next(answers)
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=payload)
        )

    await connect(answer)
    submit = {"type": "view_submission", "view": {"id": "V1"}, "user": {"id": "U1"}}
    ack = await slack.socket_send("interactive", submit)
    assert ack["payload"]["errors"] == {"key_block": "Too short."}
    assert slack.problems == []
    for _ in range(3):
        await slack.socket_send("interactive", submit)
    kinds = [p.split(": ")[1] for p in slack.problems]
    assert kinds == ["invalid_errors", "invalid_response_action", "invalid_arguments"]


async def test_disconnect_makes_the_client_reconnect_on_a_new_url(
    slack: SlackApiEmulator, connect: Callable[..., Awaitable[Connected]]
) -> None:
    seen = await connect(ack_empty)
    first = await slack.wait_for_socket()
    await slack.socket_disconnect()
    await slack.wait_for(
        lambda s: (
            len(s.calls_to("apps.connections.open")) == 2
            and s.socket_connections[-1].open
            and not first.open
        ),
        timeout=5,
    )
    second = await slack.wait_for_socket()
    assert second.id != first.id and second.ticket != first.ticket
    ack = await slack.socket_send("slash_commands", command_payload("after reconnect"))
    assert ack["envelope_id"] == seen.requests[-1].envelope_id
    assert slack.socket_envelopes[-1].connection_id == second.id


async def test_stopping_the_emulator_closes_sockets_promptly() -> None:
    async with SlackApiEmulator(app_token=APP_TOKEN) as slack:
        client = SocketModeClient(
            app_token=APP_TOKEN,
            web_client=AsyncWebClient(base_url=slack.api_url),
            auto_reconnect_enabled=False,
        )
        try:
            await asyncio.wait_for(client.connect(), timeout=5)
            connection = await slack.wait_for_socket()
            await slack.stop()
            # The emulator closed the socket itself ("going away", as Slack does), rather
            # than leaving it to be dropped (1006) once the server gave up waiting on it.
            assert client.current_session is not None
            assert client.current_session.close_code == WSCloseCode.GOING_AWAY
            assert not connection.open and not slack.socket_connected
        finally:
            await client.close()


async def _error(call: Awaitable[Any]) -> str:
    with pytest.raises(SlackApiError) as caught:
        await call
    return str(caught.value.response["error"])
