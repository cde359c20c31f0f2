"""Scenario 5, failover: two replicas on one PostgreSQL database, a run going on replica A;
A is killed (SIGKILL, so it cleans nothing up) while the model is answering it. Figures:
seconds from the kill to the run's first model call on replica B, and to the thread
posting again; then, once the run is over, agent messages lost (stored by A, never shown)
and shown twice."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import asyncpg

from bench.ack import wait_active
from bench.delivery import finished, start_in, thread_turns, until
from bench.postgres import NoPostgres, fresh_database
from bench.processes import fakes, running_app
from bench.report import Figure, at_most, shown
from tests.fakes.slack_api import SlackApiEmulator

NAME = "5 failover"
CHANNEL = "C1"


async def run(folder: Path, *, smoke: bool) -> list[Figure]:
    try:
        async with fresh_database() as url:
            # The smoke takes the smallest lease there is: its run is taken up sooner.
            lease = {"RUN_LEASE_S": "2"} if smoke else {}
            return await _measure(folder, url, turns=6 if smoke else 12, **lease)
    except NoPostgres as exc:
        print(f"failover not measured: no PostgreSQL ({exc})", file=sys.stderr)
        return [shown(NAME, "not measured: no PostgreSQL server answers", 0, "")]


async def _measure(folder: Path, url: str, *, turns: int, **extra: str) -> list[Figure]:
    async with fakes({CHANNEL}) as (slack, llm):
        llm.latency_s = 1.0  # each answer takes a second: a kill lands mid-reply
        settings = {"DATABASE_URL": url, "MAX_TURNS": str(turns), **extra}
        async with running_app(slack, llm, folder / "a", **settings) as replica_a:
            await start_in(replica_a.events_url, CHANNEL)
            await wait_active(replica_a, 1)
            async with running_app(slack, llm, folder / "b", **settings):
                # Mid-reply: a third of the run shown, and the model answering A right now.
                await until(lambda: len(thread_turns(slack, CHANNEL)) >= turns // 3, timeout_s=60)
                asked = len(llm.arrivals)
                await until(lambda: len(llm.arrivals) > asked, timeout_s=30)
                await asyncio.sleep(llm.latency_s / 2)
                replica_a.process.kill()
                await replica_a.process.wait()
                killed = time.monotonic()
                await until(lambda: llm.arrivals[-1][0] > killed, timeout_s=120)
                first_call = next(at for at, _, _ in llm.arrivals if at > killed) - killed
                await until(lambda: _posted_since(slack, killed), timeout_s=120)
                first_post = min(c.at for c in _posts(slack) if c.at > killed) - killed
                await until(lambda: finished(slack, CHANNEL), timeout_s=turns * 5 + 60)
                stored = await _stored_turns(url)
    shown_turns = thread_turns(slack, CHANNEL)
    lost = len(stored - set(shown_turns))
    twice = len(shown_turns) - len(set(shown_turns))
    return [
        at_most(
            NAME, "kill -9 -> the run's first model call on the other replica", first_call, "s", 10
        ),
        at_most(NAME, "kill -9 -> the thread posting again", first_post, "s", 15),
        at_most(NAME, "stored messages never shown", lost, "", 0),
        at_most(NAME, "messages shown twice", twice, "", 0),
    ]


def _posts(slack: SlackApiEmulator) -> list:  # type: ignore[type-arg]
    return [
        c
        for method in ("chat.postMessage", "chat.update")
        for c in slack.calls_to(method)
        if c.ok and c.params.get("channel") == CHANNEL
    ]


def _posted_since(slack: SlackApiEmulator, moment: float) -> bool:
    return any(c.at > moment for c in _posts(slack))


async def _stored_turns(url: str) -> set[int]:
    """The turns of every agent message stored in the database (by either replica)."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await connection.fetch("SELECT payload FROM run_events WHERE kind = 'agent_message'")
    finally:
        await connection.close()
    return {int(_payload(row["payload"])["turn"]) for row in rows}


def _payload(value: object) -> dict:  # type: ignore[type-arg]
    return json.loads(value) if isinstance(value, str) else dict(value)  # type: ignore[arg-type]
