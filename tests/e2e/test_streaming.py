"""Agents' replies streamed into the thread while the model writes them, end to end.

The fake model sends its answer a word at a time (`stream_pace_s`); the emulator holds the
app to Slack's streaming methods (thread, recipient, expiry, rate tiers). Whatever path a
reply takes (a stream, the update fallback, a stream that expired halfway), the thread ends
with one message per agent turn, the validated message the outbox would have posted, the
verifier's verdict on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.conftest import PROJECT_ROOT
from tests.e2e.stack import (
    AGENT_MODEL,
    SIGNING_SECRET,
    VERIFIER_MODEL,
    Stack,
    free_port,
    running_over,
    running_stack,
    start_task,
    text_of,
    verdict,
)
from tests.e2e.test_shutdown import first_answer
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_api import SlackApiEmulator
from tests.fakes.slack_signing import SlackRequestSender

KEY = "sk-stream-key-7d1e9a4b"
LONG_REPLY = " ".join(f"word{n}" for n in range(1, 41)) + "."
SCRIPT = ["1. Plan the launch.", LONG_REPLY, "Approved. TERMINATE"]
PACE_S = 0.08  # 40 words: about 3.2 s of writing for the worker's reply


def _finished(stack: Stack | Any) -> Any:  # an HTTP or a Socket Mode stack
    return lambda s: next((m for m in stack.thread() if "Run finished" in text_of(m)), None)


def _agent_messages(stack: Stack | Any) -> list[dict[str, Any]]:
    return [m for m in stack.thread() if " · turn " in _readable(m)]


def _readable(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks") or [], ensure_ascii=False) + message.get("text", "")


def _assert_final_thread(stack: Stack | Any) -> None:
    """One message per agent turn, each the validated message with its verdict, in order."""
    agents = _agent_messages(stack)
    shown = [text_of(m) for m in agents]
    assert len(agents) == 3, [s[:120] for s in shown]
    for turn, (name, message) in enumerate(
        zip(("planner", "worker", "reviewer"), agents, strict=True), 1
    ):
        assert f"*{name}* · turn {turn}" in json.dumps(message["blocks"], ensure_ascii=False)
        assert "Verifier: pass" in text_of(message)
    assert LONG_REPLY in text_of(agents[1])
    assert sum(LONG_REPLY[:40] in text_of(m) for m in stack.thread()) == 1  # never twice
    assert stack.slack.problems == []


async def _run(stack: Stack | Any) -> None:
    """Start the paced run over the stack's transport (signed HTTP, or Socket Mode)."""
    stack.llm.stream_pace_s = PACE_S
    stack.llm.script(AGENT_MODEL, SCRIPT)
    stack.llm.default(VERIFIER_MODEL, verdict())
    await start_task(stack, "Plan a launch")


def _streaming_stack(transport: str, tmp_path: Path, secret_key: str) -> Any:
    """The app with STREAMING on over `transport`: "http" or "socket" (Socket Mode)."""
    return running_over(transport, tmp_path, secret_key, key=KEY, streaming=True)


def _worker_streaming(slack: SlackApiEmulator) -> dict[str, Any] | None:
    """The worker's reply once it is a stream with at least one append."""
    return next(
        (m for m in slack.streams() if "worker" in m.get("text", "") and m["stream_appends"]),
        None,
    )


async def test_a_reply_streams_in_appends_then_becomes_the_verified_message(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY, streaming=True
    ) as stack:
        await _run(stack)
        await stack.slack.wait_for(_finished(stack), timeout=30)
        _assert_final_thread(stack)
        worker = _agent_messages(stack)[1]
        assert worker.get("stream_appends") is not None, "the worker's reply was not streamed"
        assert len(worker["stream_appends"]) >= 3, worker["stream_appends"]
        assert worker["stream_stopped"] and not worker["streaming"]
        assert worker["stream_recipient"] == ("U1", "T1")  # the requester watches it
        # Live text grew in order, the agent named first, and nothing was posted for it.
        started = next(
            c
            for c in stack.slack.calls_to("chat.startStream")
            if c.response.get("ts") == worker["ts"]
        )
        live = started.params["markdown_text"] + "".join(worker["stream_appends"])
        assert live.startswith("**worker** · turn 2\n")
        assert LONG_REPLY.startswith(live.split("\n", 1)[1])
        posted = [c.response.get("ts") for c in stack.slack.calls_to("chat.postMessage")]
        assert worker["ts"] not in posted


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_streaming_refused_falls_back_to_one_updated_message(
    transport: str, tmp_path: Path, secret_key: str
) -> None:
    async with _streaming_stack(transport, tmp_path, secret_key) as stack:
        stack.slack.refuse_streaming("feature_not_enabled")
        await _run(stack)
        await stack.slack.wait_for(_finished(stack), timeout=30)
        _assert_final_thread(stack)
        worker = _agent_messages(stack)[1]
        updates = [c for c in stack.slack.calls_to("chat.update") if c.params["ts"] == worker["ts"]]
        live_updates = [c for c in updates if "blocks" not in c.params]
        assert len(live_updates) >= 1, [c.params for c in updates]
        # Refused once, the app stopped asking: one refusal for the whole run.
        assert len(stack.slack.calls_to("chat.startStream")) == 1


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_a_stream_that_expires_mid_reply_falls_back_without_losing_text(
    transport: str, tmp_path: Path, secret_key: str
) -> None:
    async with _streaming_stack(transport, tmp_path, secret_key) as stack:
        await _run(stack)
        worker_stream = await stack.slack.wait_for(_worker_streaming, timeout=30)
        stack.slack.expire_streams()
        await stack.slack.wait_for(_finished(stack), timeout=30)
        _assert_final_thread(stack)
        assert worker_stream["stream_expired"]
        refused = [c for c in stack.slack.calls_to("chat.appendStream") if not c.ok]
        assert [c.error for c in refused] == ["message_not_in_streaming_state"]
        # The whole text so far went into the message by chat.update, then the final one.
        rewrites = [
            c.params["text"]
            for c in stack.slack.calls_to("chat.update")
            if c.params["ts"] == worker_stream["ts"] and "blocks" not in c.params
        ]
        assert rewrites and all(r.startswith("*worker* · turn 2\nword1 ") for r in rewrites)


@pytest.mark.slow
async def test_a_kill_mid_stream_leaves_the_complete_reply_once_after_restart(
    tmp_path: Path,
) -> None:
    """SIGKILL while the worker's reply streams: the next process takes the turn again from
    the saved state and its reply replaces the dead stream's message; nothing dangles."""
    secret_key = Fernet.generate_key().decode()
    database_url = f"sqlite+aiosqlite:///{tmp_path}/kill.db"
    async with (
        SlackApiEmulator(member_channels={"C1"}) as slack,
        FakeLLMServer(valid_keys={KEY}) as llm,
        SlackRequestSender() as sender,
    ):
        llm.stream_pace_s = PACE_S
        llm.script(AGENT_MODEL, ["1. Plan the launch.", LONG_REPLY, LONG_REPLY, SCRIPT[2]])
        llm.default(VERIFIER_MODEL, verdict())
        env = {
            "PATH": os.environ.get("PATH", ""),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": database_url,
            "SERVER_SECRET_KEY": secret_key,
            "OPENROUTER_API_KEY": KEY,
            "LLM_BASE_URL": llm.base_url,
            "LLM_MODEL": AGENT_MODEL,
            "VERIFIER_MODEL": VERIFIER_MODEL,
            "LLM_MAX_RETRIES": "0",
            "RUN_LEASE_S": "2",  # the dead process's run and claim lapse in seconds
            "STREAMING": "on",
            "PYTHONPATH": str(PROJECT_ROOT),  # run from the test's folder: no developer .env
        }

        async def start() -> tuple[asyncio.subprocess.Process, str]:
            port = free_port()
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                cwd=tmp_path,
                env={**env, "PORT": str(port)},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            return process, f"http://127.0.0.1:{port}/slack/events"

        first, url = await start()
        try:
            assert await first_answer(first, sender, url) == 200  # /autogen Plan a launch
            dead = await slack.wait_for(_worker_streaming, timeout=30)
            first.kill()  # SIGKILL: nothing gets to stop the stream
            await first.wait()
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
        assert dead["streaming"] and LONG_REPLY not in dead["text"]  # cut off mid-reply

        second, _ = await start()
        try:
            thread = lambda: slack.thread("C1", slack.channel_messages("C1")[0]["ts"])  # noqa: E731
            await slack.wait_for(
                lambda s: any("Run finished" in text_of(m) for m in thread()), timeout=60
            )
        finally:
            second.terminate()
            await second.wait()
        agents = [m for m in thread() if " · turn " in _readable(m)]
        assert [m["blocks"][0]["elements"][0]["text"].split(" · ")[0] for m in agents] == [
            "*planner*",
            "*worker*",
            "*reviewer*",
        ]
        assert sum(LONG_REPLY[:40] in text_of(m) for m in thread()) == 1  # once, complete
        assert LONG_REPLY in text_of(agents[1])
        # The restart's note came first, so the dead stream's message was taken out (it
        # would have stood above the note), stopped, then deleted.
        notes = [m for m in thread() if "restart" in text_of(m).lower()]
        assert notes and float(notes[0]["ts"]) < float(agents[1]["ts"])
        assert dead["ts"] in [m["ts"] for m in slack.deleted] and dead.get("stream_stopped")
        assert not any(m.get("streaming") for m in slack.messages.values())  # none dangling
        assert slack.problems == []


async def test_a_reply_streams_over_socket_mode(tmp_path: Path, secret_key: str) -> None:
    from tests.e2e.test_socket_mode import running_socket_stack

    async with running_socket_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY, streaming=True
    ) as stack:
        stack.llm.stream_pace_s = PACE_S
        stack.llm.script(AGENT_MODEL, SCRIPT)
        stack.llm.default(VERIFIER_MODEL, verdict())
        ack = await stack.command("Plan a launch")
        assert ack == {"envelope_id": ack["envelope_id"]}, ack
        await stack.slack.wait_for(_finished(stack), timeout=30)
        _assert_final_thread(stack)
        worker = _agent_messages(stack)[1]
        assert len(worker["stream_appends"]) >= 3 and worker["stream_stopped"]


async def test_a_key_the_model_echoes_never_reaches_slack_even_half_written(
    tmp_path: Path, secret_key: str
) -> None:
    leaky = "The key you gave me is " + KEY + " and " + " ".join(["more"] * 20) + "."
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY, streaming=True
    ) as stack:
        stack.llm.stream_pace_s = 0.05
        stack.llm.script(AGENT_MODEL, ["1. Plan.", leaky, "Approved. TERMINATE"])
        stack.llm.default(VERIFIER_MODEL, verdict())
        status, _, _ = await stack.command("Plan a launch")
        assert status == 200
        await stack.slack.wait_for(_finished(stack), timeout=30)
        worker = _agent_messages(stack)[1]
        assert worker["stream_appends"], "the reply was not streamed"
        sent = json.dumps([c.params for c in stack.slack.calls])
        for piece in (KEY, KEY[:12], KEY[-12:]):  # whole, nor its start or end
            assert piece not in sent, piece
        assert "[redacted]" in text_of(worker)


async def test_streaming_off_posts_each_reply_whole(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY, streaming=False
    ) as stack:
        await _run(stack)
        await stack.slack.wait_for(_finished(stack), timeout=30)
        _assert_final_thread(stack)
        for method in ("chat.startStream", "chat.appendStream", "chat.stopStream"):
            assert stack.slack.calls_to(method) == [], method
        assert all('"stream": true' not in json.dumps(r.json) for r in stack.llm.requests)
