"""Scenario 2, pipeline overhead per agent message: both fakes answer at once, so what is
measured is the app's own work from the model's reply (the fake model's answer sent) to
the message visible in Slack (the emulator's chat.postMessage answered), the verifier's
call included. Over 200 runs at once, each in its own channel: median, p99 and the
messages per second one process sustains. Then one long run: message 500 against message
5, which must cost the same (nothing in the pipeline may grow with the run's length)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from bench.delivery import finished, start_in, until
from bench.processes import fakes, running_app
from bench.report import Figure, at_most, median, percentile, shown
from tests.e2e.stack import AGENT_MODEL, text_of
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_api import SlackApiEmulator

NAME = "2 pipeline"
TURN = re.compile(r"turn (\d+)")
TASK = re.compile(r"pipeline run in (C\d+)")


def _replies(llm: FakeLLMServer) -> dict[str, list[float]]:
    """Per channel, when each of its run's agent replies was sent, in turn order (a run's
    turns are one after another, so its n-th reply is its turn n)."""
    sent: dict[str, list[float]] = {}
    for request in llm.requests_for(AGENT_MODEL):
        found = TASK.search(str(request.json.get("messages")))
        if request.status == 200 and found:
            sent.setdefault(found.group(1), []).append(request.at)
    return sent


def _shown(slack: SlackApiEmulator) -> dict[tuple[str, int], float]:
    """When each (channel, turn) agent message was first visible in Slack."""
    visible: dict[tuple[str, int], float] = {}
    for call in slack.calls_to("chat.postMessage"):
        found = TURN.search(text_of(call.params)) if call.ok else None
        if found:
            visible.setdefault((str(call.params["channel"]), int(found.group(1))), call.at)
    return visible


def _overheads(llm: FakeLLMServer, slack: SlackApiEmulator) -> dict[tuple[str, int], float]:
    """Per (channel, turn), ms from the model's reply sent to the message visible."""
    visible = _shown(slack)
    return {
        (channel, turn): (visible[channel, turn] - at) * 1000
        for channel, times in _replies(llm).items()
        for turn, at in enumerate(times, start=1)
        if (channel, turn) in visible
    }


async def run(folder: Path, *, smoke: bool) -> list[Figure]:
    runs, turns, long_turns = (5, 3, 20) if smoke else (200, 5, 500)
    channels = [f"C{n}" for n in range(100, 100 + runs)]
    async with fakes({"C1", *channels}) as (slack, llm):
        settings = {"MAX_TURNS": str(turns), "MAX_CONCURRENT_RUNS": "256"}
        async with running_app(slack, llm, folder / "many", **settings) as app:
            await asyncio.gather(
                *(start_in(app.events_url, c, text=f"pipeline run in {c}") for c in channels)
            )
            await until(lambda: all(finished(slack, c) for c in channels), timeout_s=600)
        many = _overheads(llm, slack)
        sent = [at for times in _replies(llm).values() for at in times]
        span = max(_shown(slack).values()) - min(sent)
    async with fakes({"C1"}) as (slack, llm):
        settings = {"MAX_TURNS": str(long_turns)}
        async with running_app(slack, llm, folder / "long", **settings) as app:
            await start_in(app.events_url, "C1", text="pipeline run in C1")
            await until(lambda: finished(slack, "C1"), timeout_s=600)
        long = _overheads(llm, slack)
    early = median([long["C1", t] for t in range(1, 11) if ("C1", t) in long])
    late = median(
        [long["C1", t] for t in range(long_turns - 9, long_turns + 1) if ("C1", t) in long]
    )
    return [
        shown(NAME, f"agent messages measured ({runs} runs at once)", len(many), ""),
        at_most(
            NAME, "model reply -> visible in Slack, median", median(list(many.values())), "ms", 5
        ),
        shown(
            NAME,
            "model reply -> visible in Slack, p99",
            percentile(list(many.values()), 0.99),
            "ms",
        ),
        shown(NAME, f"messages per second over {runs} runs", len(many) / span, "msg/s"),
        shown(NAME, "one run: messages 1-10, median", early, "ms"),
        shown(NAME, f"one run: messages {long_turns - 9}-{long_turns}, median", late, "ms"),
        at_most(NAME, f"one run: message {long_turns} / message 5 (flat)", late / early, "x", 1.5),
    ]
