"""Scenario 4, delivery under Slack's limit: the emulator allows N posts per second per
channel (429 and `Retry-After` beyond, as Slack's special posting limit does); a run whose
team writes far faster than that (both fakes answer at once) must keep its thread in order
and drain at the limit. One run of many messages in one channel, then ten runs in ten
channels at once. Figures: the share of the allowed rate used, messages lost, messages
posted twice, and whether each thread is in turn order."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from bench.load import generate
from bench.processes import fakes, running_app
from bench.report import Figure, at_least, at_most, shown
from tests.e2e.stack import SIGNING_SECRET, text_of
from tests.fakes.slack_api import SlackApiEmulator
from tests.fakes.slack_signing import sign, slash_command

NAME = "4 delivery"
# Posts per second per channel the emulator allows. Slack's own limit is about one; the
# long run goes at five so 300 messages take a minute, not five. Ten channels at once go
# at Slack's rate: at five each, the 50 posts a second would measure one process's CPU
# (scenario 2's throughput), not how the publisher shares Slack's limit among channels.
LIMIT = 5
MANY_LIMIT = 1
TURN = re.compile(r"turn (\d+)")


def _thread(slack: SlackApiEmulator, channel: str) -> list[dict]:
    """The thread of the one run in `channel` (its root is the channel's last message)."""
    roots = slack.channel_messages(channel)
    return slack.thread(channel, roots[-1]["ts"]) if roots else []


def finished(slack: SlackApiEmulator, channel: str) -> bool:
    return any("Run finished" in text_of(m) for m in _thread(slack, channel))


def thread_turns(slack: SlackApiEmulator, channel: str) -> list[int]:
    """The turn numbers of the agent messages in the thread of `channel`'s run, as shown."""
    return [
        int(m.group(1)) for m in (TURN.search(text_of(x)) for x in _thread(slack, channel)) if m
    ]


def _check(
    slack: SlackApiEmulator, channel: str, turns: int, limit: int
) -> tuple[float, int, int, bool]:
    """(share of the limit used, lost, posted twice, in order) for one channel's run."""
    posts = [
        c for c in slack.calls_to("chat.postMessage") if c.ok and c.params.get("channel") == channel
    ]
    span = posts[-1].at - posts[0].at
    used = (len(posts) - 1) / span / limit if span > 0 else 0.0
    seen = thread_turns(slack, channel)
    lost = len(set(range(1, turns + 1)) - set(seen))
    twice = len(seen) - len(set(seen))
    return min(used, 1.0), lost, twice, seen == sorted(seen)


async def run(folder: Path, *, smoke: bool) -> list[Figure]:
    long_turns, short_turns, channels = (12, 3, 2) if smoke else (300, 20, 10)
    names = [f"C{n}" for n in range(2, 2 + channels)]
    async with fakes({"C1", *names}) as (slack, llm):
        slack.posts_per_channel_s = LIMIT
        figures: list[Figure] = []
        async with running_app(slack, llm, folder / "one", MAX_TURNS=str(long_turns)) as app:
            await generate("slash", app.events_url, SIGNING_SECRET, 1, 1, "long run")
            await until(lambda: finished(slack, "C1"), timeout_s=long_turns / LIMIT * 3 + 60)
            used, lost, twice, ordered = _check(slack, "C1", long_turns, LIMIT)
        figures += [
            at_least(
                NAME,
                f"one run, {long_turns} messages at {LIMIT}/s: limit used",
                used * 100,
                "%",
                90,
            ),
            at_most(NAME, "one run: messages lost", lost, "", 0),
            at_most(NAME, "one run: messages posted twice", twice, "", 0),
            at_least(NAME, "one run: thread in turn order", float(ordered), "yes", 1),
        ]
    async with fakes(set(names)) as (slack, llm):
        slack.posts_per_channel_s = MANY_LIMIT
        async with running_app(
            slack, llm, folder / "many", MAX_TURNS=str(short_turns), MAX_CONCURRENT_RUNS="16"
        ) as app:
            await asyncio.gather(*(start_in(app.events_url, channel) for channel in names))
            await until(
                lambda: all(finished(slack, c) for c in names),
                timeout_s=short_turns / MANY_LIMIT * 3 + 60,
            )
            checks = [_check(slack, c, short_turns, MANY_LIMIT) for c in names]
        figures += [
            at_least(
                NAME,
                f"{channels} runs in {channels} channels at {MANY_LIMIT}/s: limit used (lowest)",
                min(c[0] for c in checks) * 100,
                "%",
                90,
            ),
            at_most(NAME, f"{channels} runs: messages lost", sum(c[1] for c in checks), "", 0),
            at_most(NAME, f"{channels} runs: posted twice", sum(c[2] for c in checks), "", 0),
            shown(
                NAME,
                f"{channels} runs: threads in turn order",
                sum(c[3] for c in checks),
                "of " + str(channels),
            ),
        ]
    return figures


async def start_in(url: str, channel: str, *, text: str = "") -> None:
    """`/autogen <text>` in `channel`, signed as Slack signs it."""
    body, content_type = slash_command(text=text or f"run in {channel}", channel_id=channel)
    headers = {"Content-Type": content_type, **sign(SIGNING_SECRET, body)}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as answer,
    ):
        await answer.read()


async def until(condition: Callable[[], bool], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the runs did not finish in time")
        await asyncio.sleep(0.2)
