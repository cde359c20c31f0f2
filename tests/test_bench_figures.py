"""The benchmark's own arithmetic: percentiles by nearest rank, and a resume timed on the
resumed run's own model request."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench import waiting
from bench.report import percentile
from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL


def test_p99_of_a_hundred_values_is_the_99th_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.50) == 50.0  # nearest rank: ceil(0.5 * 100) = 50
    assert percentile(values, 0.99) == 99.0  # nearest rank: ceil(0.99 * 100) = 99


async def test_resume_latency_counts_only_the_resumed_runs_own_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(waiting, "time", SimpleNamespace(monotonic=lambda: clock.now))

    def asking(task: str) -> dict:
        return {"messages": [{"role": "user", "content": task}]}

    # The previous probe's agent call.
    llm = SimpleNamespace(arrivals=[(99.0, AGENT_MODEL, asking("resume probe9"))])

    class Parked:
        async def parked_run(self, task: str) -> str:
            return "run-1"

    class KeyOn:
        async def give_key(self, user_id: str) -> None:
            # The previous probe's run is still going: its verifier call comes 10 ms after
            # the key is sent and its next agent call at 100 ms; the resumed run's own
            # first request comes 300 ms after.
            llm.arrivals.append((100.010, VERIFIER_MODEL, asking("resume probe9")))
            llm.arrivals.append((100.100, AGENT_MODEL, asking("resume probe9")))
            llm.arrivals.append((100.300, AGENT_MODEL, asking("resume me")))

    latency = await waiting._resume_latency(llm, Parked(), KeyOn(), "probe0", "resume me")  # type: ignore[arg-type]
    assert latency == pytest.approx(300.0), f"reported {latency:.0f} ms for a 300 ms resume"
