"""The whole app in Socket Mode: what a Slack user does, delivered over the websocket.

``serve`` is started with an app-level token and no signing secret, so Bolt's
``AsyncSocketModeHandler`` asks the Slack emulator for a websocket URL
(``apps.connections.open``), connects, and receives slash commands and interactions as
envelopes the test sends with ``slack.socket_send``. Every Web API call still goes to the
emulator, and each envelope must be acknowledged within Slack's 3 seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from bot import ids
from bot.server import serve
from store import Store
from store.settings import ConfigError, Settings
from tests.db import all_runs
from tests.e2e.stack import (
    AGENT_MODEL,
    VERIFIER_MODEL,
    app_settings,
    assert_default_team_transcript,
    button,
    serving,
    text_of,
    verdict,
)
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_api import SlackApiEmulator
from tests.fakes.slack_signing import block_actions, slash_command, view_submission

APP_TOKEN = "xapp-test"
KEY = "sk-socket-user-key-7c1d9e4b"
# Not key-shaped, so only withholding (not the key-shape scrubber) can keep it out of logs.
CANARY = "canary-Wq93mT5r-socket-key-that-must-not-leak"


@dataclass
class SocketStack:
    """The app connected over Socket Mode; methods play Slack's part over the websocket."""

    slack: SlackApiEmulator
    llm: FakeLLMServer
    settings: Settings

    async def command(
        self, text: str, user_id: str = "U1", channel_id: str = "C1"
    ) -> dict[str, Any]:
        body, _ = slash_command(
            text=text,
            user_id=user_id,
            channel_id=channel_id,
            response_url=self.slack.new_response_url(channel=channel_id),
        )
        # In Socket Mode a slash command's payload is its form fields, as a JSON object.
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        return await self.slack.socket_send("slash_commands", fields)

    async def click(self, message: dict[str, Any], action_id: str, user_id: str) -> dict[str, Any]:
        body, _ = block_actions(
            action_id=action_id,
            message=message,
            user_id=user_id,
            response_url=self.slack.new_response_url(channel=message.get("channel")),
        )
        return await self.slack.socket_send("interactive", _interaction(body))

    async def submit(
        self, view: dict[str, Any], values: dict[str, Any], user_id: str
    ) -> dict[str, Any]:
        body, _ = view_submission(view=view, state_values=values, user_id=user_id)
        return await self.slack.socket_send("interactive", _interaction(body))

    def thread(self, channel: str = "C1") -> list[dict[str, Any]]:
        root = self.slack.channel_messages(channel)[-1]
        return self.slack.thread(channel, root["ts"])


def _interaction(body: bytes) -> dict[str, Any]:
    """Over HTTP an interaction is a form field ``payload=<json>``; over a socket, the JSON."""
    return json.loads(dict(parse_qsl(body.decode()))["payload"])


@contextlib.asynccontextmanager
async def running_socket_stack(
    tmp_path: Path, secret_key: str, *, valid_keys: set[str], **settings_overrides: Any
) -> AsyncIterator[SocketStack]:
    async with (
        SlackApiEmulator(member_channels={"C1"}, app_token=APP_TOKEN) as slack,
        FakeLLMServer(valid_keys=valid_keys) as llm,
    ):
        settings = app_settings(
            slack, llm, tmp_path, secret_key, slack_app_token=APP_TOKEN, **settings_overrides
        )
        assert settings.socket_mode and settings.slack_signing_secret is None
        async with serving(settings, start_timeout_s=10):
            await slack.wait_for_socket(timeout=5)
            yield SocketStack(slack, llm, settings)
        # The app closed its websocket on the way out (the emulator sees the close frame).
        await slack.wait_for(lambda s: not s.socket_connected, timeout=5)


def _finished(stack: SocketStack) -> Any:
    return lambda s: next((m for m in stack.thread() if "Run finished" in text_of(m)), None)


def _assert_every_envelope_acked(stack: SocketStack) -> None:
    """Each envelope got its ack (the emulator notes any later than Slack's 3 s deadline
    in `problems`, which every test checks)."""
    for record in stack.slack.socket_envelopes:
        assert record.ack is not None, record.envelope_id


async def _request_key_and_open_modal(stack: SocketStack, task: str) -> dict[str, Any]:
    """Start a run, then click the credential button as the requester; return the modal."""
    ack = await stack.command(task)
    assert ack == {"envelope_id": ack["envelope_id"]}, ack  # a bare ack: work goes on after
    request_message = await stack.slack.wait_for(
        lambda s: next((m for m in stack.thread() if button(m, ids.CREDENTIAL_OPEN)), None)
    )
    ack = await stack.click(request_message, ids.CREDENTIAL_OPEN, user_id="U1")
    assert "payload" not in ack, ack
    await stack.slack.wait_for(lambda s: s.views_opened)
    view = stack.slack.views_opened[-1]
    assert view["private_metadata"] == button(request_message, ids.CREDENTIAL_OPEN)["value"]
    return view


async def test_full_run_over_socket_mode(tmp_path: Path, secret_key: str) -> None:
    async with running_socket_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        slack = stack.slack
        stack.llm.script(
            AGENT_MODEL, ["1. Pick a theme.", "Queues wait in line", "Good. TERMINATE"]
        )
        stack.llm.script(VERIFIER_MODEL, [verdict(), verdict(), verdict()])
        # Once to check the token at start-up, once to connect; both with the app token.
        opened = slack.calls_to("apps.connections.open")
        assert len(opened) == 2
        assert all(c.ok and c.headers["Authorization"] == f"Bearer {APP_TOKEN}" for c in opened)

        # Help is answered in the ack itself, as a response payload.
        ack = await stack.command("help")
        assert "/autogen" in json.dumps(ack["payload"]), ack
        assert slack.calls_to("chat.postMessage") == []

        # Slack holds the root post for 3 s: the envelope is acknowledged before it
        # (nothing slow runs before the ack), and the root appears afterwards.
        slack.slow("chat.postMessage", 3)
        ack = await stack.command("Write a haiku about queues")
        assert ack == {"envelope_id": ack["envelope_id"]}, ack
        assert slack.channel_messages("C1") == [], "the ack waited for the root post"
        assert slack.calls_to("chat.postMessage") == []
        root = await slack.wait_for(lambda s: s.channel_messages("C1"))
        assert "Write a haiku about queues" in text_of(root[0])
        assert slack.held == ["chat.postMessage"]  # the root post was the one held
        request_message = await slack.wait_for(
            lambda s: next((m for m in stack.thread() if button(m, ids.CREDENTIAL_OPEN)), None)
        )

        # Someone else clicks the button: refused privately, no modal.
        await stack.click(request_message, ids.CREDENTIAL_OPEN, user_id="U2")
        refusal = await slack.wait_for(lambda s: [e for e in s.ephemerals if e["user"] == "U2"])
        assert "Only <@U1>" in refusal[0]["text"]
        assert slack.views_opened == []

        # The requester opens the modal; a malformed key is refused inline in the ack.
        ack = await stack.click(request_message, ids.CREDENTIAL_OPEN, user_id="U1")
        assert "payload" not in ack, ack
        await slack.wait_for(lambda s: s.views_opened)
        view = slack.views_opened[-1]
        assert view["private_metadata"] == button(request_message, ids.CREDENTIAL_OPEN)["value"]
        bad = {ids.CREDENTIAL_INPUT_BLOCK: {ids.CREDENTIAL_INPUT: "has space"}}
        ack = await stack.submit(view, bad, "U1")
        assert ack["payload"]["response_action"] == "errors", ack
        assert ids.CREDENTIAL_INPUT_BLOCK in ack["payload"]["errors"]
        ack = await stack.submit(
            view, {ids.CREDENTIAL_INPUT_BLOCK: {ids.CREDENTIAL_INPUT: KEY}}, "U1"
        )
        assert "payload" not in ack, ack  # accepted: the modal closes

        summary = await slack.wait_for(_finished(stack), timeout=30)
        assert_default_team_transcript(stack.thread(), summary)
        # The root is refreshed just after the summary is posted.
        final_root = await stack.slack.wait_for(
            lambda s: (
                "Completed" in text_of(slack.channel_messages("C1")[-1])
                and slack.channel_messages("C1")[-1]
            )
        )
        assert "Completed" in text_of(final_root) and button(final_root, ids.STOP_RUN) is None

        assert len(stack.llm.requests_for(AGENT_MODEL)) == 3
        assert all(r.headers.get("Authorization") == f"Bearer {KEY}" for r in stack.llm.requests)
        assert len(slack.socket_connections) == 1  # one connection carried everything
        _assert_every_envelope_acked(stack)
        assert slack.problems == []


@contextlib.contextmanager
def _every_logger_at_debug() -> Iterator[None]:
    """Put the root and every logger created so far at DEBUG; restore them afterwards."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


async def test_key_in_a_socket_envelope_never_reaches_a_log_record(
    tmp_path: Path, secret_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_socket_stack(
        tmp_path, secret_key, valid_keys={CANARY}, log_level="DEBUG"
    ) as stack:
        with _every_logger_at_debug():
            stack.llm.script(AGENT_MODEL, ["Plan.", "Work.", "Done. TERMINATE"])
            stack.llm.default(VERIFIER_MODEL, verdict())
            view = await _request_key_and_open_modal(stack, "Use the key")
            values = {ids.CREDENTIAL_INPUT_BLOCK: {ids.CREDENTIAL_INPUT: CANARY}}
            ack = await stack.submit(view, values, "U1")
            assert "payload" not in ack, ack
            await stack.slack.wait_for(_finished(stack), timeout=30)
            llm_requests = stack.llm.requests
            assert llm_requests and all(
                r.headers["Authorization"] == f"Bearer {CANARY}" for r in llm_requests
            )
            slack_traffic = json.dumps(
                [(c.params, c.response) for c in stack.slack.calls], default=str
            )
            acks = json.dumps([r.ack for r in stack.slack.socket_envelopes])
            assert stack.slack.problems == []

    assert CANARY not in slack_traffic
    assert CANARY not in acks
    assert CANARY not in json.dumps([r.json for r in llm_requests])
    for record in caplog.records:
        assert CANARY not in record.getMessage(), record.name
        assert CANARY not in str(record.exc_text or ""), record.name
    assert CANARY not in caplog.text
    # DEBUG capture was live for Slack's libraries while the key travelled: Bolt's app
    # logger (which the Socket Mode client also logs raw frames through) logged at DEBUG.
    assert any(
        r.levelno == logging.DEBUG and r.name.startswith("slack_bolt") for r in caplog.records
    ), "no DEBUG record from slack_bolt was captured"
    for path in tmp_path.glob("e2e.db*"):
        assert CANARY.encode() not in path.read_bytes(), path.name


async def test_a_refused_app_token_stops_start_up_with_one_line(
    tmp_path: Path, secret_key: str
) -> None:
    """A wrong SLACK_APP_TOKEN is named at start-up instead of a Socket Mode client retrying
    forever (the placeholder from .env.example is refused before that, by the settings)."""
    async with (
        SlackApiEmulator(member_channels={"C1"}, app_token=APP_TOKEN) as slack,
        FakeLLMServer(valid_keys={KEY}) as llm,
    ):
        settings = app_settings(
            slack, llm, tmp_path, secret_key, slack_app_token="xapp-test-token-slack-refuses"
        )
        with pytest.raises(ConfigError, match="SLACK_APP_TOKEN was refused by Slack"):
            await serve(settings, host="127.0.0.1")


async def test_malformed_envelopes_are_acked_and_do_nothing(
    tmp_path: Path, secret_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Socket Mode skips the HTTP guard; the same checks refuse these before Bolt:
    acknowledged (Slack would redeliver otherwise), nothing run, no traceback."""
    caplog.set_level(logging.INFO)
    malformed = [
        ("interactive", {"type": "block_actions", "user": "U1", "actions": []}),
        ("interactive", {"type": "block_actions", "user": {"id": "U1"}, "actions": [7]}),
        (
            "interactive",
            {
                "type": "view_submission",
                "user": {"id": "U1"},
                "view": {"callback_id": ids.CREDENTIAL_MODAL, "state": []},
            },
        ),
        ("slash_commands", {"command": "/autogen", "text": "a task", "user_id": ["U1"]}),
    ]
    async with running_socket_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        calls_before = len(stack.slack.calls)
        for envelope_type, payload in malformed:
            ack = await stack.slack.socket_send(envelope_type, payload)
            assert ack["envelope_id"]
        assert len(stack.slack.calls) == calls_before
        assert stack.llm.requests == []
        store = await Store.open(stack.settings)
        try:
            assert await all_runs(store) == []
        finally:
            await store.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    refusals = [r.getMessage() for r in caplog.records if "refused a Socket Mode" in r.getMessage()]
    assert len(refusals) == len(malformed), refusals


async def test_a_named_team_and_each_agents_identity_over_socket_mode(
    tmp_path: Path, secret_key: str
) -> None:
    """Over the socket as over HTTP: `--team` picks a TEAMS_DIR team, an unknown one gets
    the private listing, and each agent posts under its own name (chat:write.customize)."""
    from runner.team_config import DEFAULT_TEAM_PATH

    teams = tmp_path / "teams"
    teams.mkdir()
    research = json.loads(DEFAULT_TEAM_PATH.read_text(encoding="utf-8"))
    research["description"] = "Finds sources."
    (teams / "research.json").write_text(json.dumps(research))
    async with running_socket_stack(
        tmp_path, secret_key, valid_keys={KEY}, teams_dir=str(teams), openrouter_api_key=KEY
    ) as stack:
        slack = stack.slack
        await stack.command("--team marketing write a slogan")
        answered = await slack.wait_for(
            lambda s: next((r for posts in s.responses.values() for r in posts), None)
        )
        assert "`marketing`" in json.dumps(answered) and "`research`" in json.dumps(answered)
        assert slack.channel_messages("C1") == []  # nothing started

        stack.llm.script(AGENT_MODEL, ["1. Docs 2. Paper", "Done.", "Good. TERMINATE"])
        stack.llm.default(VERIFIER_MODEL, verdict())
        ack = await stack.command("--team research find sources on queues")
        assert ack == {"envelope_id": ack["envelope_id"]}, ack
        await slack.wait_for(_finished(stack), timeout=30)
        root = slack.channel_messages("C1")[0]
        assert "team `research`" in text_of(root)
        agents = [m for m in stack.thread() if "turn " in text_of(m)]
        assert [m.get("username") for m in agents] == ["Planner", "Worker", "Reviewer"]
        assert slack.problems == []
