"""Scenario 6, start-up: from the process's start to `/healthz` answering 200 (the probe a
container platform waits on), the median of five starts on a fresh database each."""

from __future__ import annotations

import time
from pathlib import Path

from bench.processes import BENCH_KEY, running_app
from bench.report import Figure, at_most, median, shown
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_api import SlackApiEmulator

NAME = "6 start-up"


async def run(folder: Path, *, smoke: bool) -> list[Figure]:
    starts = 1 if smoke else 5
    seconds: list[float] = []
    async with (
        SlackApiEmulator(member_channels={"C1"}) as slack,
        FakeLLMServer(valid_keys={BENCH_KEY}) as llm,
    ):
        for n in range(starts):
            began = time.monotonic()
            async with running_app(slack, llm, folder / f"start-{n}"):
                seconds.append(time.monotonic() - began)
    return [
        at_most(NAME, "process start to /healthz (median)", median(seconds), "s", 2),
        shown(NAME, "slowest start", max(seconds), "s"),
    ]
