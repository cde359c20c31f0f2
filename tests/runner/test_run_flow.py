"""Runs end to end inside the runner, with replayed agents and a scripted verifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import events as ev
from store import Store
from store.crypto import Owner
from store.records import RunStatus
from store.settings import load_settings
from tests.runner.helpers import (
    FINISHED,
    ScriptedVerifier,
    manager,
    replay_team_file,
    runner_settings,
    verdict,
    wait_for_status,
)

KEY = "sk-runner-test-key-0001"


@pytest.fixture
async def sqlite_store(tmp_path: Path, secret_key: str):
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db", server_secret_key=secret_key
    )
    store = await Store.open(settings)
    yield store
    await store.close()


async def test_run_completes_with_events_in_order_and_a_verdict_per_message(
    tmp_path: Path, secret_key: str, sqlite_store: Store
) -> None:
    team = replay_team_file(tmp_path, ["Draft answer: 42."], ["Checked, correct. TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team)
    await sqlite_store.credentials.put(Owner("T1", "UREQ", "openrouter"), KEY, actor_id="UREQ")
    verifier = ScriptedVerifier([verdict(), verdict()])
    runs = manager(sqlite_store, settings, verifier)
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="What is 6*7?"
        )
        run = await wait_for_status(sqlite_store, started.run.id, FINISHED)
    finally:
        await runs.stop()
    assert run.status == RunStatus.COMPLETED and run.turns == 2
    events = await sqlite_store.runs.events(run.id)
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
