"""Scenario 3, waiting runs: park many runs on a credential (started through the API by a
person with no key) and read the app's resident memory before and after; a waiting run is
rows, not objects, so it should cost almost nothing. Then a key submitted for a parked run
-> that run's first model request: on one replica, and on two replicas sharing PostgreSQL
with the key submitted on the one that has no room (its only slot is taken), so the other
must hear of it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from cryptography.fernet import Fernet

from bench.ack import make_token
from bench.delivery import until
from bench.load import generate
from bench.postgres import NoPostgres, fresh_database
from bench.processes import BENCH_KEY, App, running_app
from bench.report import Figure, at_most, median, shown
from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL, verdict
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_api import SlackApiEmulator

NAME = "3 waiting runs"
BLOCKER = "hold the only slot"


def resident_mb(app: App) -> float:
    """The app process's resident set (VmRSS), in MB."""
    status = Path(f"/proc/{app.process.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


class Api:
    """The app's REST API as one person (their token)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self._session, self._base, self._token = session, base, token

    async def call(self, method: str, path: str, body: dict | None = None) -> dict:  # type: ignore[type-arg]
        headers = {"Authorization": f"Bearer {self._token}"}
        async with self._session.request(
            method, self._base + path, json=body, headers=headers
        ) as answer:
            if answer.status >= 300:
                raise RuntimeError(f"{method} {path}: {answer.status} {await answer.text()}")
            return await answer.json()  # type: ignore[no-any-return]

    async def parked_run(self, task: str) -> str:
        """Start a run and wait until it waits for its requester's key; its id."""
        task_id = (await self.call("POST", "/start-task", {"task": task}))["task_id"]
        for _ in range(600):
            if (await self.call("GET", f"/tasks/{task_id}"))["status"] == "waiting_credential":
                return str(task_id)
            await asyncio.sleep(0.05)
        raise TimeoutError(f"run {task_id} never waited for a key")

    async def give_key(self, user_id: str) -> None:
        body = {"user_id": user_id, "provider": "openrouter", "value": BENCH_KEY}
        await self.call("POST", "/credentials", body)


async def _idle(app: App, *, timeout_s: float) -> None:
    """Until the app has no run running or queued (every parked run is waiting)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(f"{app.base}/healthz") as answer:
                health = await answer.json()
            if health["active_runs"] == 0 and health["queued_runs"] == 0:
                return
            await asyncio.sleep(0.5)
    raise TimeoutError("the parked runs did not all reach their wait")


async def _resume_latency(
    llm: FakeLLMServer, parked_on: Api, key_on: Api, user_id: str, task: str
) -> float:
    """Park `user_id`'s run of `task` (its own) through `parked_on`, submit the key through
    `key_on`: ms from sending the key to that run's first model request (another run's
    request, the previous probe's verdict say, is not it)."""
    await parked_on.parked_run(task)
    asked = len(llm.arrivals)
    sent = time.monotonic()
    await key_on.give_key(user_id)

    def resumed() -> float | None:
        for at, model, body in llm.arrivals[asked:]:
            if model == AGENT_MODEL and task in str(body.get("messages")):
                return at
        return None

    await until(lambda: resumed() is not None, timeout_s=30)
    return (resumed() - sent) * 1000  # type: ignore[operator]


@contextlib.asynccontextmanager
async def _fakes() -> AsyncIterator[tuple[SlackApiEmulator, FakeLLMServer, asyncio.Event]]:
    """The emulator and the fake model; the model holds the blocker's reply until the
    event is set (set on the way out, so no turn is left waiting at shutdown)."""
    release = asyncio.Event()

    async def reply(request: dict) -> str | None:  # type: ignore[type-arg]
        if BLOCKER in str(request.get("messages")):
            await release.wait()
        return None  # the default reply

    async with (
        SlackApiEmulator(member_channels={"C1"}) as slack,
        FakeLLMServer(valid_keys={BENCH_KEY}) as llm,
    ):
        llm.set_handler(AGENT_MODEL, reply)
        llm.default(AGENT_MODEL, "Done. TERMINATE")
        llm.default(VERIFIER_MODEL, verdict())
        try:
            yield slack, llm, release
        finally:
            release.set()


async def run(folder: Path, *, smoke: bool) -> list[Figure]:
    parked, probes = (150, 2) if smoke else (10_000, 7)
    figures: list[Figure] = []
    settings = {"LLM_API_KEY": "", "MAX_TURNS": "1", "MAX_CONCURRENT_RUNS": "16"}
    async with (
        _fakes() as (slack, llm, _),
        running_app(slack, llm, folder / "one", **settings) as app,
    ):
        tokens = {user: await make_token(app, user) for user in ["parker", *_probes(probes)]}
        await generate("start-task", f"{app.base}/start-task", tokens["parker"], 25, 4, "w")
        await _idle(app, timeout_s=120)
        warm = _waiting(app)  # caches and pools are at their size from here on
        before = resident_mb(app)
        began = time.monotonic()
        rounds = max(1, (parked - warm) // 50)
        await generate("start-task", f"{app.base}/start-task", tokens["parker"], 50, rounds, "p")
        await _idle(app, timeout_s=parked)
        parking_s = time.monotonic() - began
        after = resident_mb(app)
        count = _waiting(app)
        async with aiohttp.ClientSession() as session:
            latencies = []
            for user in _probes(probes):
                api = Api(session, app.base, tokens[user])
                latencies.append(await _resume_latency(llm, api, api, user, f"resume {user}"))
    figures += [
        shown(NAME, "runs parked on a key", count, "runs"),
        shown(NAME, "parking rate (start-task to waiting)", (count - warm) / parking_s, "runs/s"),
        shown(NAME, f"resident memory, {warm:,} / {count:,} parked", before, f"/ {after:,.1f} MB"),
        at_most(
            NAME,
            "resident memory per 1,000 waiting runs",
            (after - before) / (count - warm) * 1000,
            "MB",
            5,
        ),
        at_most(
            NAME, "key -> first model request, one replica (median)", median(latencies), "ms", 100
        ),
    ]
    try:
        figures.append(await _across_replicas(folder, probes))
    except NoPostgres as exc:
        print(f"key on another replica not measured: no PostgreSQL ({exc})", file=sys.stderr)
        figures.append(shown(NAME, "key on another replica: not measured, no PostgreSQL", 0, ""))
    return figures


def _waiting(app: App) -> int:
    """Runs waiting for a key, counted in the app's database (SQLite, read-only)."""
    uri = f"file:{app.folder}/bench.db?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        query = "SELECT count(*) FROM runs WHERE status = 'waiting_credential'"
        (count,) = db.execute(query).fetchone()
    return int(count)


def _probes(count: int) -> list[str]:
    return [f"probe{n}" for n in range(count)]


async def _across_replicas(folder: Path, probes: int) -> Figure:
    """Replica B's one slot is held by a run whose model never answers; runs parked on A
    get their keys through B, so only A can take them up, when it hears of the key."""
    async with fresh_database() as url, _fakes() as (slack, llm, release):
        settings = {
            "LLM_API_KEY": "",
            "MAX_TURNS": "1",
            "DATABASE_URL": url,
            "SERVER_SECRET_KEY": Fernet.generate_key().decode(),  # shared, as replicas must
        }
        async with running_app(slack, llm, folder / "b", MAX_CONCURRENT_RUNS="1", **settings) as b:
            tokens = {
                user: await make_token(b, user, url) for user in ["blocker", *_probes(probes)]
            }
            async with aiohttp.ClientSession() as session:
                blocker = Api(session, b.base, tokens["blocker"])
                await blocker.give_key("blocker")
                await blocker.call("POST", "/start-task", {"task": BLOCKER})
                await until(lambda: len(llm.arrivals) > 0, timeout_s=30)  # B's slot is taken
                async with running_app(slack, llm, folder / "a", **settings) as a:
                    latencies = []
                    for user in _probes(probes):
                        on_a, on_b = (
                            Api(session, a.base, tokens[user]),
                            Api(session, b.base, tokens[user]),
                        )
                        latencies.append(
                            await _resume_latency(llm, on_a, on_b, user, f"resume {user}")
                        )
                release.set()  # the blocker's turn ends: B stops without waiting on it
    return at_most(
        NAME,
        "key -> first model request, key on the other replica (median)",
        median(latencies),
        "ms",
        250,
    )
