"""SIGTERM: `python -m bot` stops taking work, lets the running turn finish and be saved,
hands the run back to the queue, and exits; the next start finishes the run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from runner.manager import RunManager
from store import Store
from store.crypto import Owner
from store.records import RunStatus
from store.settings import load_settings
from tests.conftest import PROJECT_ROOT
from tests.e2e.stack import AGENT_MODEL, SIGNING_SECRET, VERIFIER_MODEL, free_port, verdict
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_api import SlackApiEmulator
from tests.fakes.slack_signing import SlackRequestSender, slash_command
from tests.runner.helpers import FINISHED, wait_for_status

KEY = "sk-shutdown-key-123456"


async def first_answer(
    process: asyncio.subprocess.Process, sender: SlackRequestSender, url: str, tries: int = 200
) -> int:
    """Send `/autogen Plan a launch` until the starting app answers; its HTTP status.

    Fails with the app's output if it exits first or never answers."""
    body, content_type = slash_command(text="Plan a launch")
    for _ in range(tries):
        if process.returncode is not None:
            break
        try:
            status, _, _ = await sender.post(url, body, content_type, SIGNING_SECRET)
        except OSError:
            await asyncio.sleep(0.1)
        else:
            return status
    if process.returncode is None:
        process.kill()
        how = f"still not answering after {tries} tries, so it was killed"
    else:
        how = f"it exited with code {process.returncode}"
    output, _ = await process.communicate()
    raise AssertionError(
        f"the app never answered at {url}: {how}; its output:\n"
        + output.decode(errors="replace")[-3000:]
    )


@pytest.mark.slow
async def test_sigterm_lets_the_turn_finish_and_hands_the_run_back(tmp_path: Path) -> None:
    secret_key = Fernet.generate_key().decode()
    database_url = f"sqlite+aiosqlite:///{tmp_path}/stop.db"
    turn_started = asyncio.Event()

    async def slow_second_turn(_request: dict) -> str:
        turn_started.set()
        await asyncio.sleep(1.5)
        return "Worker result."

    async with (
        SlackApiEmulator(member_channels={"C1"}) as slack,
        FakeLLMServer(valid_keys={KEY}) as llm,
        SlackRequestSender() as sender,
    ):
        llm.script(AGENT_MODEL, ["1. Plan.", slow_second_turn, "Approved. TERMINATE"])
        llm.default(VERIFIER_MODEL, verdict())
        store = await Store.open(
            load_settings(database_url=database_url, server_secret_key=secret_key)
        )
        await store.credentials.put(Owner("T1", "U1", "openrouter"), KEY, actor_id="U1")
        await store.close()
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "PORT": str(port),
            "DATABASE_URL": database_url,
            "SERVER_SECRET_KEY": secret_key,
            "LLM_BASE_URL": llm.base_url,
            "LLM_MODEL": AGENT_MODEL,
            "VERIFIER_MODEL": VERIFIER_MODEL,
            "LLM_MAX_RETRIES": "0",
            # Run from the test's empty folder, so a developer's `.env` in the project
            # folder is never read; the project is found through PYTHONPATH instead.
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}/slack/events"
            status = await first_answer(process, sender, url)
            assert status == 200
            await asyncio.wait_for(turn_started.wait(), timeout=20)
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, output.decode()[-2000:]
        log_lines = [
            json.loads(line) for line in output.decode().splitlines() if line.startswith("{")
        ]
        assert any("shutting down" in line["message"] for line in log_lines)

        settings = load_settings(
            database_url=database_url,
            server_secret_key=secret_key,
            llm_base_url=llm.base_url,
            llm_model=AGENT_MODEL,
            verifier_model=VERIFIER_MODEL,
        )
        store = await Store.open(settings)
        runs = RunManager(store, settings, poll_interval_s=0.05)
        try:
            (run,) = await store.runs.list_for_user(workspace_id="T1", user_id="U1")
            assert run.status == RunStatus.QUEUED and run.turns == 2 and run.team_state
            events = await store.runs.events(run.id)
            assert "restarting" in events[-1].payload.get("text", "")
            await runs.start()  # the next start picks it up from the saved turn
            done = await wait_for_status(store, run.id, FINISHED)
            assert done.status == RunStatus.COMPLETED and done.turns == 3
        finally:
            await runs.stop()
            await store.close()
