"""The processes the bench measures: the app itself (`python -m bot`, in HTTP mode against
the bench's Slack emulator and fake model), and the floor a bare Bolt app sets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.e2e.stack import AGENT_MODEL, SIGNING_SECRET, VERIFIER_MODEL, free_port, verdict
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_api import SlackApiEmulator

PROJECT = Path(__file__).resolve().parent.parent
BENCH_KEY = "sk-bench-key-000000000"


@dataclass
class App:
    """A running app process: where it listens, and its process."""

    process: asyncio.subprocess.Process
    port: int
    folder: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        return f"{self.base}/slack/events"


def app_environment(
    slack: SlackApiEmulator, llm: FakeLLMServer, folder: Path, port: int, **settings: str
) -> dict[str, str]:
    """The app's environment: HTTP mode against the emulator, the fake model with a key
    for everyone (so no run waits for one unless a scenario wants it), SQLite in `folder`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LLM_"))}
    env.update(
        PYTHONPATH=str(PROJECT),
        SLACK_BOT_TOKEN=slack.bot_token,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        PORT=str(port),
        DATABASE_URL=f"sqlite+aiosqlite:///{folder}/bench.db",
        SERVER_SECRET_KEY=os.environ.get("BENCH_SECRET_KEY", ""),
        LLM_BASE_URL=llm.base_url,
        LLM_MODEL=AGENT_MODEL,
        VERIFIER_MODEL=VERIFIER_MODEL,
        LLM_API_KEY=BENCH_KEY,
        LLM_MAX_RETRIES="0",
        LOG_LEVEL="WARNING",
        STREAMING="off",
    )
    env.update({name.upper(): value for name, value in settings.items()})
    return {k: v for k, v in env.items() if v != ""}


@contextlib.asynccontextmanager
async def fakes(
    channels: set[str], agent_reply: str = "Another step of the work."
) -> AsyncIterator[tuple[SlackApiEmulator, FakeLLMServer]]:
    """The Slack emulator (the app a member of `channels`) and the fake model (the bench's
    key valid), every agent answering `agent_reply` (never TERMINATE by default: MAX_TURNS
    ends a run) and every verdict a pass; at once unless a scenario sets a latency."""
    async with (
        SlackApiEmulator(member_channels=channels) as slack,
        FakeLLMServer(valid_keys={BENCH_KEY}) as llm,
    ):
        llm.default(AGENT_MODEL, agent_reply)
        llm.default(VERIFIER_MODEL, verdict())
        yield slack, llm


async def wait_healthy(base: str, *, timeout_s: float = 60) -> float:
    """Seconds until `GET /healthz` answers 200."""
    began = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - began < timeout_s:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{base}/healthz") as answer:
                    if answer.status == 200:
                        return time.monotonic() - began
            await asyncio.sleep(0.01)
    raise TimeoutError(f"{base}/healthz did not answer within {timeout_s} s")


@contextlib.asynccontextmanager
async def running_app(
    slack: SlackApiEmulator, llm: FakeLLMServer, folder: Path, **settings: str
) -> AsyncIterator[App]:
    """`python -m bot` as `make run` starts it, until the block ends (SIGTERM, then wait)."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    # BENCH_PROFILE=DIR: the app runs under pyinstrument, its session saved in DIR (show it
    # with `python -m pyinstrument --load FILE`, `-p flat=true` for time per function).
    profile = os.environ.get("BENCH_PROFILE")
    wrapper = ["-m", "pyinstrument", "-r", "session", "-o", f"{profile}/{folder.name}.pyisession"]
    # BENCH_LOGS=DIR: the app's log (stderr) is kept in DIR, at LOG_LEVEL=INFO.
    logs = os.environ.get("BENCH_LOGS")
    if logs:
        settings = {"LOG_LEVEL": "INFO", **settings}
    with open(f"{logs}/{folder.name}.log", "ab") if logs else open(os.devnull, "wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *(wrapper if profile else []),
            "-m",
            "bot",
            cwd=folder,
            env=app_environment(slack, llm, folder, port, **settings),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    try:
        await wait_healthy(f"http://127.0.0.1:{port}")
        yield App(process, port, folder)
    finally:
        await stop(process, grace_s=60)


async def stop(process: asyncio.subprocess.Process, *, grace_s: float) -> None:
    """SIGTERM, as a platform stops a container; SIGKILL past `grace_s`."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=grace_s)
    except TimeoutError:
        process.kill()
        await process.wait()


FLOOR_APP = """
import os, sys
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
app = AsyncApp(client=client, signing_secret=os.environ["SIGNING_SECRET"])

@app.command("/autogen")
async def ack_only(ack):
    await ack()

app.start(port=int(os.environ["PORT"]), path="/slack/events", host="127.0.0.1")
"""


FLOOR_API = """
import os, uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

class Task(BaseModel):
    task: str

app = FastAPI()

@app.post("/start-task", status_code=201)
async def start(body: Task) -> dict:
    return {"task_id": "0" * 16, "status": "queued"}

uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
"""


async def _started(url: str, refused: tuple[int, ...]) -> None:
    began = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.post(url, data=b"") as answer:
                    if answer.status in refused:
                        return
            if time.monotonic() - began > 30:
                raise TimeoutError(f"{url} did not start")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _floor_process(code: str, env: dict[str, str], url: str) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _started(url, (400, 401, 422))
        yield url
    finally:
        await stop(process, grace_s=10)


def running_floor_api() -> contextlib.AbstractAsyncContextManager[str]:
    """A bare FastAPI route on uvicorn that validates a body and answers 201: the floor of
    `POST /start-task`. Yields its URL."""
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    return _floor_process(FLOOR_API, env, f"http://127.0.0.1:{port}/start-task")


def running_floor(slack: SlackApiEmulator) -> contextlib.AbstractAsyncContextManager[str]:
    """A bare Bolt AsyncApp that only acks `/autogen` (Bolt's own aiohttp server): the
    floor any Bolt app pays. Yields its /slack/events URL."""
    port = free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "PORT": str(port),
    }
    return _floor_process(FLOOR_APP, env, f"http://127.0.0.1:{port}/slack/events")
