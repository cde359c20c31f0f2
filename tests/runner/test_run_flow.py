"""Runs end to end inside the runner, with replayed agents and a scripted verifier."""

from __future__ import annotations

from pathlib import Path

from store import events as ev
from store.records import RunStatus
from tests.runner.helpers import (
    FINISHED,
    ScriptedVerifier,
    replay_team_file,
    runner_settings,
    running_manager,
    start_run,
    verdict,
    wait_for_status,
)

KEY = "sk-runner-test-key-0001"


async def test_run_completes_with_events_in_order_and_a_verdict_per_message(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["Draft answer: 42."], ["Checked, correct. TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team)
    verifier = ScriptedVerifier([verdict(), verdict()])
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run = await wait_for_status(store, await start_run(runs, "What is 6*7?"), FINISHED)
        events = await store.runs.events(run.id)
    assert run.status == RunStatus.COMPLETED and run.turns == 2
    kinds = [e.kind for e in events]
    assert kinds == [
        ev.RUN_STARTED,
        ev.AGENT_MESSAGE,
        ev.VERIFIER_RESULT,
        ev.AGENT_MESSAGE,
        ev.VERIFIER_RESULT,
        ev.FINISHED,
    ]
    assert [e.seq for e in events] == list(range(1, 7))
    assert events[1].payload["source"] == "worker" and events[3].payload["source"] == "reviewer"
    assert events[2].payload["agent_seq"] == 2 and events[2].payload["verdict"] == "pass"
    assert events[-1].payload["status"] == "completed"
    assert verifier.keys_seen == [KEY, KEY]
    assert run.prompt_tokens > 0  # the verifier's usage is counted
