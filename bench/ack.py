"""Scenario 1, acks under load: 50 `/autogen <task>` at once while 200 runs are active
(their model takes seconds to answer, so they stay running), p50 and p99, beside the same
load on a bare Bolt app that only acks (the floor); then the same for `POST /start-task`,
beside a bare FastAPI route (its floor)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import aiohttp

from bench.load import generate
from bench.processes import (
    BENCH_KEY,
    PROJECT,
    App,
    running_app,
    running_floor,
    running_floor_api,
)
from bench.report import Figure, at_most, percentile, shown
from tests.e2e.stack import AGENT_MODEL, SIGNING_SECRET, VERIFIER_MODEL, verdict
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_api import SlackApiEmulator

NAME = "1 ack latency"


async def make_token(app: App, user_id: str = "bench", database_url: str = "") -> str:
    """An API token made as a person makes one (`python -m store create-token`), in the
    app's database (its SQLite file unless `database_url` says)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    env["DATABASE_URL"] = database_url or f"sqlite+aiosqlite:///{app.folder}/bench.db"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "store",
        "create-token",
        "--user",
        user_id,
        "--workspace",
        "T1",
        cwd=app.folder,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    found = re.search(rb"agt_[A-Za-z0-9_\-]{43}", out)
    if found is None:
        raise RuntimeError("create-token printed no token")
    return found.group().decode()


async def wait_active(app: App, count: int, timeout_s: float = 120) -> int:
    """Until `count` runs are running in the app (its /healthz says how many)."""
    began = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{app.base}/healthz") as answer:
                active = int((await answer.json())["active_runs"])
            if active >= count or time.monotonic() - began > timeout_s:
                return active
            await asyncio.sleep(0.2)


def _figures(what: str, latencies: list[float], floor: list[float]) -> list[Figure]:
    p50, p99, floor_p99 = (
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        percentile(floor, 0.99),
    )
    return [
        shown(NAME, f"{what} p50", p50, "ms"),
        at_most(NAME, f"{what} p99", p99, "ms", 50),
        shown(NAME, f"{what} floor p99", floor_p99, "ms"),
        at_most(NAME, f"{what} p99 / floor p99", p99 / floor_p99, "x", 2),
    ]


async def run(folder: Path, *, smoke: bool) -> list[Figure]:
    active, concurrency, rounds = (4, 5, 1) if smoke else (200, 50, 4)
    async with (
        SlackApiEmulator(member_channels={"C1"}) as slack,
        FakeLLMServer(valid_keys={BENCH_KEY}) as llm,
    ):
        # Each model call takes this long: the runs stay active throughout the load.
        llm.latency_s = 0.5 if smoke else 5.0
        llm.default(AGENT_MODEL, "Still working on it.")
        llm.default(VERIFIER_MODEL, verdict())
        async with running_floor(slack) as url:
            slash_floor = await generate("slash", url, SIGNING_SECRET, concurrency, rounds, "")
        async with running_floor_api() as url:
            api_floor = await generate("start-task", url, "-", concurrency, rounds, "floor")
        async with running_app(
            slack, llm, folder / "ack", MAX_CONCURRENT_RUNS="256", MAX_TURNS="500"
        ) as app:
            await generate(
                "slash",
                app.events_url,
                SIGNING_SECRET,
                min(active, 50),
                max(1, active // 50),
                "background",
            )
            running = await wait_active(app, active)
            slash = await generate(
                "slash", app.events_url, SIGNING_SECRET, concurrency, rounds, "measured"
            )
            token = await make_token(app)
            api = await generate(
                "start-task", f"{app.base}/start-task", token, concurrency, rounds, "api"
            )
    return [
        shown(NAME, "runs active during the load", running, "runs"),
        *_figures("/autogen <task>", slash["latencies_ms"], slash_floor["latencies_ms"]),
        *_figures("POST /start-task", api["latencies_ms"], api_floor["latencies_ms"]),
    ]
