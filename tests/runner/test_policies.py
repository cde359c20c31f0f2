"""AUTO_APPLY, RUN_TIMEOUT_S, a switched-off verifier, and following a run's events."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from runner.decisions import ActionApplier
from store import events as ev
from store.actions import ActionSpec
from store.changes import ANY_RUN, RunChange
from store.crypto import Owner
from store.models import RunRow, utcnow
from store.records import ActionStatus, RunStatus
from tests.db import audit_entries, decided_long_ago
from tests.runner.helpers import (
    FINISHED,
    ScriptedVerifier,
    choose,
    offered_actions,
    replay_team_file,
    runner_settings,
    running_manager,
    start_run,
    verdict,
    wait_for_status,
)

KEY = "sk-policy-key-00000003"


async def test_auto_apply_decides_without_a_human(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["wrong"], ["TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "p.db", auto_apply="continue")
    failing = verdict("fail", "Off topic.", [{"type": "continue", "label": "Go on", "params": {}}])
    verifier = ScriptedVerifier([failing, verdict()])
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run = await wait_for_status(store, await start_run(runs), FINISHED)
        assert run.status == RunStatus.COMPLETED
        events = await store.runs.events(run.id)
        result = [e for e in events if e.kind == ev.ACTION_RESULT][0]
        assert result.payload["auto"] is True and result.payload["type"] == "continue"
        audit = await audit_entries(store, "T1")
        assert any(a["action"] == "action_decided" and a["actor_id"] == "auto" for a in audit)


async def test_recovery_leaves_an_action_this_process_is_applying_alone(
    tmp_path: Path, secret_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race behind a flaky run of the test above: the periodic recovery pass came
    between auto_apply's decision and its effect, and applied the action itself as if a
    person had (`auto: false`). Here the pass is made to come exactly then, with the
    decision dated back so that only "being applied here" can keep recovery away."""
    team = replay_team_file(tmp_path, ["wrong"], ["TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "p.db", auto_apply="continue")
    failing = verdict("fail", "Off topic.", [{"type": "continue", "label": "Go on", "params": {}}])
    verifier = ScriptedVerifier([failing, verdict()])
    passes: list[str] = []
    real_apply = ActionApplier._apply

    async def recovery_lands_in_between(self, action, *, decided_by):
        passes.append(decided_by)
        if len(passes) == 1:  # auto_apply's own apply: recovery runs before its effect
            await decided_long_ago(store, action.id)
            await runs.recover()
        await real_apply(self, action, decided_by=decided_by)

    monkeypatch.setattr(ActionApplier, "_apply", recovery_lands_in_between)
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run = await wait_for_status(store, await start_run(runs), FINISHED)
        events = await store.runs.events(run.id)
    results = [e.payload for e in events if e.kind == ev.ACTION_RESULT]
    assert passes == ["auto"], "recovery applied the action a second time"
    assert [(r["auto"], r["decided_by"]) for r in results] == [(True, "auto")]
    assert run.status == RunStatus.COMPLETED


async def test_run_timeout_fails_the_run(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["a"], ["b"])
    settings = runner_settings(tmp_path, secret_key, team, "p.db", run_timeout_s=10)
    async with running_manager(settings, key=KEY, start=False) as (store, runs):
        run_id = await start_run(runs)
        # The run already worked 11 s (before a wait, say): its time is up before a turn.
        async with store.engine.begin() as connection:
            await connection.execute(update(RunRow).values(active_s=11.0))
        await runs.start()
        run = await wait_for_status(store, run_id, FINISHED)
        assert run.status == RunStatus.FAILED
        error = [e for e in await store.runs.events(run.id) if e.kind == ev.ERROR][-1]
        assert error.payload["code"] == "timeout" and "RUN_TIMEOUT_S" in error.payload["text"]


async def test_time_spent_waiting_does_not_count_against_the_timeout(
    tmp_path: Path, secret_key: str
) -> None:
    """Started an hour ago, then waited for a key: RUN_TIMEOUT_S=10 still leaves it its 10 s
    of work, and each turn's working time is recorded."""
    team = replay_team_file(tmp_path, ["a"], ["b TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "p.db", run_timeout_s=10)
    async with running_manager(settings, key=KEY, start=False) as (store, runs):
        run_id = await start_run(runs)
        async with store.engine.begin() as connection:
            await connection.execute(
                update(RunRow).values(started_at=utcnow() - timedelta(hours=1), active_s=2.0)
            )
        await runs.start()
        run = await wait_for_status(store, run_id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        assert run.active_s > 2.0  # the 2 s already worked, plus this run's turns


async def test_verifier_can_be_switched_off(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["a"], ["TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "p.db", verifier_enabled=False)
    verifier = ScriptedVerifier([verdict("fail", "never asked")])
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run = await wait_for_status(store, await start_run(runs), FINISHED)
        kinds = [e.kind for e in await store.runs.events(run.id)]
        assert run.status == RunStatus.COMPLETED and ev.VERIFIER_RESULT not in kinds
        assert verifier.keys_seen == []


async def test_the_event_log_is_followed_in_order_from_any_sequence_number(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["a"], ["TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "p.db")
    async with running_manager(settings, key=KEY) as (store, runs):
        run_id = await start_run(runs)
        await wait_for_status(store, run_id, FINISHED)
        followed = await store.runs.events(run_id)
        assert [e.seq for e in followed] == list(range(1, len(followed) + 1))
        assert followed[0].kind == ev.RUN_STARTED and followed[-1].kind == ev.FINISHED
        for seen in range(len(followed) + 1):  # a client that saw `seen` events gets the rest
            assert await store.runs.events(run_id, after_seq=seen) == followed[seen:]


async def test_request_credential_action_asks_then_resumes(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["I need GitHub access."], ["TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "p.db")
    ask = verdict(
        "fail",
        "The worker needs GitHub.",
        [
            {
                "type": "request_credential",
                "label": "Ask for GitHub",
                "params": {"provider": "GitHub"},
            }
        ],
    )
    verifier = ScriptedVerifier([ask, verdict(), verdict()])
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run_id = await start_run(runs)
        parked = await wait_for_status(store, run_id, {RunStatus.WAITING_APPROVAL})
        waiting = await choose(
            store, runs, parked.id, "request_credential", {RunStatus.WAITING_CREDENTIAL}
        )
        request = [
            e for e in await store.runs.events(waiting.id) if e.kind == ev.CREDENTIAL_REQUEST
        ]
        assert request[-1].payload["provider"] == "github"
        await runs.keys.submit(
            request[-1].payload["request_id"], user_id="UREQ", secret="ghp-token-123456"
        )
        run = await wait_for_status(store, parked.id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        assert await store.credentials.exists(Owner("T1", "UREQ", "github"))
        assert "github credential is now available" in (run.team_state or "")


async def test_an_action_applied_twice_at_once_takes_effect_once(
    tmp_path: Path, secret_key: str
) -> None:
    """A live decision and another replica's recovery pass apply the same approval."""
    team = replay_team_file(tmp_path, ["I need GitHub access."], ["TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "p.db")
    ask = verdict(
        "fail",
        "The worker needs GitHub.",
        [{"type": "request_credential", "label": "Ask", "params": {"provider": "github"}}],
    )
    async with running_manager(settings, ScriptedVerifier([ask]), key=KEY) as (store, runs):
        run_id = await start_run(runs)
        await wait_for_status(store, run_id, {RunStatus.WAITING_APPROVAL})
        action_id = (await offered_actions(store, run_id))["request_credential"]
        decision = await store.actions.decide(action_id, user_id="UREQ", approvers=frozenset())
        assert decision.action is not None
        await asyncio.gather(
            runs._actions.apply(decision.action, decided_by="UREQ"),
            runs._actions.apply(decision.action, decided_by="UREQ"),
        )
        kinds = [e.kind for e in await store.runs.events(run_id)]
        assert kinds.count(ev.ACTION_RESULT) == 1 and kinds.count(ev.CREDENTIAL_REQUEST) == 1


async def test_a_stale_approval_does_not_answer_newer_buttons(
    tmp_path: Path, secret_key: str
) -> None:
    """Approved, then the process died before applying it; by recovery the run had been
    offered new buttons. The old decision is dropped; the new buttons stand."""
    team = replay_team_file(tmp_path, ["Draft."], ["TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "p.db")
    fix = [{"type": "revise", "label": "Fix", "params": {}}]
    verifier = ScriptedVerifier([verdict("fail", "First.", fix)])
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run_id = await start_run(runs)
        await wait_for_status(store, run_id, {RunStatus.WAITING_APPROVAL})
        old = await store.actions.decide(
            (await offered_actions(store, run_id))["revise"], user_id="UREQ", approvers=frozenset()
        )
        assert old.action is not None
        await decided_long_ago(store, old.action.id)  # by a process that died since
        newer = await store.actions.offer(
            run_id,
            [ActionSpec("stop", "Stop", {})],
            reason="Second look.",
            guard=ANY_RUN,
            change=RunChange(),
        )
        assert newer is not None
        # Recovered here, or by the scheduler's own periodic recovery meanwhile (then this
        # call leaves it to that one): either way, once.
        await runs.recover()
        async with asyncio.timeout(10):
            while (await store.actions.get(old.action.id)).status != ActionStatus.APPLIED:
                await asyncio.sleep(0.02)
        run = await store.runs.get(run_id)
        assert run.status == RunStatus.WAITING_APPROVAL
        kinds = [e.kind for e in await store.runs.events(run_id)]
        assert ev.ACTION_RESULT not in kinds
        assert (await offered_actions(store, run_id)) == {"stop": newer[1][0].id}
