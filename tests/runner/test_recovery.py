"""Crash recovery: a runner process killed with SIGKILL loses no saved turn and repeats none.

The subprocess tests run `tests.runner.crash_child` on a SQLite file shared with the test
process, kill it at a known point (it prints a line when it gets there), then let another
process (or this one) take over once the dead process's lease (RUN_LEASE_S=2) lapses.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import TextMentionTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.replay import ReplayChatCompletionClient
from sqlalchemy import update

from runner.housekeeping import MAX_RECOVERIES
from store import Store
from store import events as ev
from store.events import NewEvent
from store.models import RunRow, utcnow
from store.records import RequestStatus, RunStatus
from store.settings import Settings
from tests.db import pending_request_ids
from tests.runner import crash_child
from tests.runner.child_process import child
from tests.runner.helpers import (
    FINISHED,
    REPLAY_MODEL_INFO,
    put_requester_key,
    replay_team_file,
    runner_settings,
    running_manager,
    wait_for_status,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-recovery-test-key-0003"
LINE_TIMEOUT_S = 15.0
RESUMED_TEXT = "resuming from its last saved turn"


def three_agent_team(folder: Path) -> Path:
    """planner -> worker -> reviewer, one scripted line each; the reviewer ends the run.

    Each agent speaks once, so the replay scripts (which restart from their first line when
    the team is rebuilt on resume) never repeat a line: a repeated line means a repeated turn.
    """
    agents = [
        AssistantAgent(
            name, model_client=ReplayChatCompletionClient([line], model_info=REPLAY_MODEL_INFO)
        )
        for name, line in (
            ("planner", "1. Count syllables. 2. Write it."),
            ("worker", "Queues hold the work / a crash forgets nothing here / the lease runs out"),
            ("reviewer", "Five-seven-five, on topic. TERMINATE"),
        )
    ]
    team = RoundRobinGroupChat(
        agents, termination_condition=TextMentionTermination("TERMINATE", sources=["reviewer"])
    )
    path = folder / "team3.json"
    path.write_text(json.dumps(team.dump_component().model_dump(mode="json")))
    return path


def _settings(tmp_path: Path, secret_key: str, team: Path) -> Settings:
    return runner_settings(
        tmp_path, secret_key, team, "recovery.db", run_lease_s=crash_child.LEASE_S
    )


@pytest.mark.slow
async def test_killed_mid_run_resumes_from_the_saved_turn_in_another_process(
    tmp_path: Path, secret_key: str
) -> None:
    settings = _settings(tmp_path, secret_key, three_agent_team(tmp_path))
    store = await Store.open(settings)
    await put_requester_key(store, KEY)
    try:
        async with child(settings, tmp_path, "start") as first:
            run_id = (await first.expect("RUN ")).split()[1]
            await first.expect(f"STALLED {crash_child.STALL_AT}")
            await first.kill()
            assert first.process.returncode == -9
        crashed = await store.runs.get(run_id)
        assert crashed is not None
        # The dead process still "holds" the run; two turns are saved, the second unjudged.
        assert crashed.status == RunStatus.RUNNING and crashed.lease_owner
        assert crashed.turns == 2 and crashed.team_state and crashed.recoveries == 0
        before = [e.kind for e in await store.runs.events(run_id)]
        assert before == [
            ev.RUN_STARTED,
            ev.AGENT_MESSAGE,
            ev.VERIFIER_RESULT,
            ev.AGENT_MESSAGE,
        ], before

        async with child(settings, tmp_path, "serve") as second:
            await second.expect("SERVING")
            try:
                run = await wait_for_status(store, run_id, FINISHED, timeout=20)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{second.stderr()}") from None
        events = await store.runs.events(run_id)
    finally:
        await store.close()

    assert run.status == RunStatus.COMPLETED, (run.status, run.outcome)
    assert run.recoveries == 1
    kinds = [e.kind for e in events]
    assert kinds == [
        ev.RUN_STARTED,
        ev.AGENT_MESSAGE,
        ev.VERIFIER_RESULT,
        ev.AGENT_MESSAGE,
        ev.INFO,  # recovered by the second process
        ev.VERIFIER_RESULT,  # the message saved just before the crash, judged once
        ev.AGENT_MESSAGE,
        ev.VERIFIER_RESULT,
        ev.FINISHED,
    ], kinds
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(events) + 1)), seqs

    agent = [e for e in events if e.kind == ev.AGENT_MESSAGE]
    assert [e.payload["turn"] for e in agent] == [1, 2, 3]
    assert [e.payload["source"] for e in agent] == ["planner", "worker", "reviewer"]
    assert len({e.payload["content"] for e in agent}) == 3, "a turn was replayed"
    judged = [e.payload["agent_seq"] for e in events if e.kind == ev.VERIFIER_RESULT]
    assert judged == [e.seq for e in agent], "each agent message is judged exactly once"

    info = [e.payload["text"] for e in events if e.kind == ev.INFO]
    assert len(info) == 1 and RESUMED_TEXT in info[0], info
    assert run.turns == 3 and events[-1].payload["turns"] == 3
    assert events[-1].payload["status"] == "completed"
    # The reviewer answered with the planner's and worker's turns in its saved context,
    # which it can only have had from the state saved by the killed process.
    reviewer_context = json.dumps(json.loads(run.team_state or "{}")["agent_states"]["reviewer"])
    assert "Count syllables" in reviewer_context and "crash forgets nothing" in reviewer_context


@pytest.mark.slow
async def test_killed_while_waiting_for_a_credential_still_waits_then_completes(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["Draft."], ["Fine. TERMINATE"])
    settings = _settings(tmp_path, secret_key, team)
    # No key stored: the run must ask for one. `front` is the Slack side's handle, never
    # started here.
    async with running_manager(settings, start=False) as (store, front):
        async with child(settings, tmp_path, "start") as first:
            run_id = (await first.expect("RUN ")).split()[1]
            await wait_for_status(store, run_id, {RunStatus.WAITING_CREDENTIAL})
            await first.kill()
        killed = await store.runs.get(run_id)
        assert killed is not None and killed.status == RunStatus.WAITING_CREDENTIAL
        # Whatever lease the dead process still held on the run has lapsed by then.
        lapsed = killed.lease_expires_at.timestamp() if killed.lease_expires_at else 0.0

        async with child(settings, tmp_path, "serve") as second:
            await second.expect("SERVING")
            # Evidence, not a sleep: housekeeping passes (credential expiry, then recovery)
            # ran in the new process after the lease lapsed, and changed nothing.
            await second.recovery_passes(2, started_after=lapsed)
            still = await store.runs.get(run_id)
            assert still is not None and still.status == RunStatus.WAITING_CREDENTIAL
            assert still.recoveries == 0
            events = await store.runs.events(run_id)
            requests = [e for e in events if e.kind == ev.CREDENTIAL_REQUEST]
            assert [e.kind for e in events] == [ev.RUN_STARTED, ev.CREDENTIAL_REQUEST]
            pending = await pending_request_ids(store, run_id)
            assert pending == [requests[0].payload["request_id"]]

            result = await front.keys.submit(pending[0], user_id="UREQ", secret=KEY)
            assert result.run_resumed
            try:
                run = await wait_for_status(store, run_id, FINISHED, timeout=15)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{second.stderr()}") from None
        events = await store.runs.events(run_id)
        request = await store.requests.get(pending[0])

    assert run.status == RunStatus.COMPLETED, (run.status, run.outcome)
    # `front` was never started, so the restarted child process did the work.
    assert front.active_run_ids == set()
    assert request is not None and request.status == RequestStatus.FULFILLED
    kinds = [e.kind for e in events]
    assert kinds == [
        ev.RUN_STARTED,
        ev.CREDENTIAL_REQUEST,
        ev.CREDENTIAL_RECEIVED,
        ev.AGENT_MESSAGE,
        ev.VERIFIER_RESULT,
        ev.AGENT_MESSAGE,
        ev.VERIFIER_RESULT,
        ev.FINISHED,
    ], kinds
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert run.turns == 2 and run.recoveries == 0


async def _orphan(store: Store, run_id: str, *, recoveries: int, lease_s: float) -> None:
    """Make a run look claimed by a replica whose lease ends `lease_s` from now."""
    async with store.engine.begin() as connection:
        await connection.execute(
            update(RunRow)
            .where(RunRow.id == run_id)
            .values(
                status=RunStatus.RUNNING,
                lease_owner="replica-dead",
                lease_expires_at=utcnow() + timedelta(seconds=lease_s),
                started_at=utcnow(),
                recoveries=recoveries,
            )
        )


async def test_recover_interrupts_a_run_that_was_recovered_too_often(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["a"], ["TERMINATE"])
    settings = _settings(tmp_path, secret_key, team)
    # Not started: only recover() runs.
    async with running_manager(settings, start=False) as (store, runs):
        ids = {}
        for name in ("exhausted", "again", "alive"):
            created, _ = await store.runs.create(
                workspace_id="T1",
                channel_id="C1",
                requester_id="UREQ",
                task=name,
                events=[NewEvent(ev.RUN_STARTED, {"task": name})],
            )
            ids[name] = created.id
        await _orphan(store, ids["exhausted"], recoveries=MAX_RECOVERIES, lease_s=-5)
        await _orphan(store, ids["again"], recoveries=MAX_RECOVERIES - 1, lease_s=-5)
        await _orphan(store, ids["alive"], recoveries=MAX_RECOVERIES, lease_s=60)

        await runs.recover()
        await runs.recover()  # a second pass changes nothing more

        exhausted = await store.runs.get(ids["exhausted"])
        again = await store.runs.get(ids["again"])
        alive = await store.runs.get(ids["alive"])
        exhausted_events = await store.runs.events(ids["exhausted"])
        again_events = await store.runs.events(ids["again"])
        alive_events = await store.runs.events(ids["alive"])

    assert exhausted is not None and exhausted.status == RunStatus.INTERRUPTED
    assert exhausted.finished_at is not None and exhausted.lease_owner is None
    assert exhausted.recoveries == MAX_RECOVERIES
    assert f"interrupted {MAX_RECOVERIES} times" in (exhausted.outcome or "")
    assert [e.kind for e in exhausted_events] == [ev.RUN_STARTED, ev.ERROR, ev.FINISHED]
    assert exhausted_events[1].payload["code"] == "interrupted"
    assert exhausted_events[2].payload["status"] == "interrupted"

    # One recovery short of the limit: requeued once more, from the start (nothing saved).
    assert again is not None and again.status == RunStatus.QUEUED
    assert again.recoveries == MAX_RECOVERIES and again.lease_owner is None
    assert [e.kind for e in again_events] == [ev.RUN_STARTED, ev.INFO]
    assert "resuming from the start" in again_events[1].payload["text"]

    # A run whose owner still holds a live lease is not touched, whatever its count.
    assert alive is not None and alive.status == RunStatus.RUNNING
    assert alive.lease_owner == "replica-dead" and alive.recoveries == MAX_RECOVERIES
    assert [e.kind for e in alive_events] == [ev.RUN_STARTED]
