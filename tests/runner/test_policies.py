"""AUTO_APPLY, RUN_TIMEOUT_S, a switched-off verifier, and following a run's events."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from runner import events as ev
from store import Store
from store.crypto import Owner
from store.models import RunRow, utcnow
from store.records import RunStatus
from tests.runner.helpers import (
    FINISHED,
    ScriptedVerifier,
    manager,
    replay_team_file,
    runner_settings,
    verdict,
    wait_for_status,
)

KEY = "sk-policy-key-00000003"


async def _open(tmp_path: Path, secret_key: str, team: Path, **extra):
    settings = runner_settings(tmp_path, secret_key, team, "p.db", **extra)
    store = await Store.open(settings)
    await store.credentials.put(Owner("T1", "UREQ", "openrouter"), KEY, actor_id="UREQ")
    return settings, store


async def test_auto_apply_decides_without_a_human(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["wrong"], ["TERMINATE"])
    settings, store = await _open(tmp_path, secret_key, team, auto_apply="continue")
    failing = verdict("fail", "Off topic.", [{"type": "continue", "label": "Go on", "params": {}}])
    runs = manager(store, settings, ScriptedVerifier([failing, verdict()]))
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        run = await wait_for_status(store, started.run.id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        events = await store.runs.events(run.id)
        result = [e for e in events if e.kind == ev.ACTION_RESULT][0]
        assert result.payload["auto"] is True and result.payload["type"] == "continue"
        audit = await store.audit.list(workspace_id="T1")
        assert any(a.action == "action_decided" and a.actor_id == "auto" for a in audit)
    finally:
        await runs.stop()
        await store.close()


async def test_run_timeout_fails_the_run(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["a"], ["b"])
    settings, store = await _open(tmp_path, secret_key, team, run_timeout_s=10)
    runs = manager(store, settings)
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        # The run already worked 11 s (before a wait, say): its time is up before a turn.
        async with store.engine.begin() as connection:
            await connection.execute(update(RunRow).values(active_s=11.0))
        await runs.start()
        run = await wait_for_status(store, started.run.id, FINISHED)
        assert run.status == RunStatus.FAILED
        error = [e for e in await store.runs.events(run.id) if e.kind == ev.ERROR][-1]
        assert error.payload["code"] == "timeout" and "RUN_TIMEOUT_S" in error.payload["text"]
    finally:
        await runs.stop()
        await store.close()


async def test_time_spent_waiting_does_not_count_against_the_timeout(
    tmp_path: Path, secret_key: str
) -> None:
    """Started an hour ago, then waited for a key: RUN_TIMEOUT_S=10 still leaves it its 10 s
    of work, and each turn's working time is recorded."""
    team = replay_team_file(tmp_path, ["a"], ["b TERMINATE"])
    settings, store = await _open(tmp_path, secret_key, team, run_timeout_s=10)
    runs = manager(store, settings)
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        async with store.engine.begin() as connection:
            await connection.execute(
                update(RunRow).values(started_at=utcnow() - timedelta(hours=1), active_s=2.0)
            )
        await runs.start()
        run = await wait_for_status(store, started.run.id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        assert 2.0 < run.active_s < 10.0
    finally:
        await runs.stop()
        await store.close()


async def test_verifier_can_be_switched_off(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["a"], ["TERMINATE"])
    settings, store = await _open(tmp_path, secret_key, team, verifier_enabled=False)
    verifier = ScriptedVerifier([verdict("fail", "never asked")])
    runs = manager(store, settings, verifier)
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        run = await wait_for_status(store, started.run.id, FINISHED)
        kinds = [e.kind for e in await store.runs.events(run.id)]
        assert run.status == RunStatus.COMPLETED and ev.VERIFIER_RESULT not in kinds
        assert verifier.keys_seen == []
    finally:
        await runs.stop()
        await store.close()


async def test_follow_yields_every_event_in_order_until_finished(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["a"], ["TERMINATE"])
    settings, store = await _open(tmp_path, secret_key, team)
    runs = manager(store, settings)
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        followed = [event async for event in runs.follow(started.run.id)]
        assert [e.seq for e in followed] == list(range(1, len(followed) + 1))
        assert followed[0].kind == ev.RUN_STARTED and followed[-1].kind == ev.FINISHED
        assert followed == await store.runs.events(started.run.id)
    finally:
        await runs.stop()
        await store.close()


async def test_request_credential_action_asks_then_resumes(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["I need GitHub access."], ["TERMINATE"])
    settings, store = await _open(tmp_path, secret_key, team)
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
    runs = manager(store, settings, ScriptedVerifier([ask, verdict(), verdict()]))
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        parked = await wait_for_status(store, started.run.id, {RunStatus.WAITING_APPROVAL})
        offer = [e for e in await store.runs.events(parked.id) if e.kind == ev.ACTIONS_OFFERED][-1]
        await runs.decide(offer.payload["actions"][0]["id"], user_id="UREQ")
        waiting = await wait_for_status(store, parked.id, {RunStatus.WAITING_CREDENTIAL})
        request = [
            e for e in await store.runs.events(waiting.id) if e.kind == ev.CREDENTIAL_REQUEST
        ]
        assert request[-1].payload["provider"] == "github"
        await runs.submit_credential(
            request[-1].payload["request_id"], user_id="UREQ", secret="ghp-token-123456"
        )
        run = await wait_for_status(store, parked.id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        assert await store.credentials.exists(Owner("T1", "UREQ", "github"))
        assert "github credential is now available" in (run.team_state or "")
    finally:
        await runs.stop()
        await store.close()
