"""Durable waits (credential, approval), decisions, cancellation and limits."""

from __future__ import annotations

import gc
import json
from datetime import timedelta
from pathlib import Path

from autogen_agentchat.teams import BaseGroupChat
from cryptography.fernet import Fernet
from sqlalchemy import update

from runner import events as ev
from runner.manager import CancelOutcome
from store import Store
from store.actions import DecisionOutcome
from store.credentials import FulfilOutcome
from store.crypto import Owner
from store.models import CredentialRequestRow, utcnow
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

KEY = "sk-wait-test-key-0002"


async def _open(tmp_path: Path, secret_key: str, team: Path, **extra):
    settings = runner_settings(tmp_path, secret_key, team, "w.db", **extra)
    return settings, await Store.open(settings)


def _live_teams() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, BaseGroupChat))


async def test_missing_key_waits_then_resumes_when_the_key_arrives(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["Result."], ["Good. TERMINATE"])
    settings, store = await _open(tmp_path, secret_key, team)
    runs = manager(store, settings)
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="go"
        )
        waiting = await wait_for_status(store, started.run.id, {RunStatus.WAITING_CREDENTIAL})
        assert runs.active_run_ids == set()
        assert _live_teams() == 0, "a waiting run must hold no team in memory"
        events = await store.runs.events(waiting.id)
        request_event = events[-1]
        assert request_event.kind == ev.CREDENTIAL_REQUEST
        assert (
            request_event.payload["user_id"] == "UREQ"
            and request_event.payload["provider"] == "openrouter"
        )

        wrong = await runs.submit_credential(
            request_event.payload["request_id"], user_id="UOTHER", secret=KEY
        )
        assert wrong.outcome == FulfilOutcome.WRONG_USER
        done = await runs.submit_credential(
            request_event.payload["request_id"], user_id="UREQ", secret=KEY
        )
        assert done.outcome == FulfilOutcome.STORED and done.run_resumed
        finished = await wait_for_status(store, waiting.id, FINISHED)
        assert finished.status == RunStatus.COMPLETED
        kinds = [e.kind for e in await store.runs.events(waiting.id)]
        assert kinds[:3] == [ev.RUN_STARTED, ev.CREDENTIAL_REQUEST, ev.CREDENTIAL_RECEIVED]
        assert kinds[-1] == ev.FINISHED and kinds.count(ev.AGENT_MESSAGE) == 2
    finally:
        await runs.stop()
        await store.close()


async def test_failing_verdict_waits_for_approval_and_revise_feeds_back(
    tmp_path: Path, secret_key: str
) -> None:
    # Replay clients restart their script when the team is rebuilt on resume, so the reviewer
    # has one line; the HTTP tests show a revised answer with a stateful fake LLM.
    team = replay_team_file(tmp_path, ["2+2=5"], ["Correct. TERMINATE"])
    settings, store = await _open(tmp_path, secret_key, team, approvers="UBOSS")
    await store.credentials.put(Owner("T1", "UREQ", "openrouter"), KEY, actor_id="UREQ")
    verifier = ScriptedVerifier(
        [
            verdict(
                "fail",
                "The sum is wrong: 2+2 is 4.",
                [{"type": "revise", "label": "Fix the sum", "params": {}}],
            ),
            verdict(),
            verdict(),
            verdict(),
        ]
    )
    runs = manager(store, settings, verifier)
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="2+2?"
        )
        parked = await wait_for_status(store, started.run.id, {RunStatus.WAITING_APPROVAL})
        assert _live_teams() == 0
        offered = [e for e in await store.runs.events(parked.id) if e.kind == ev.ACTIONS_OFFERED][
            -1
        ]
        types = [a["type"] for a in offered.payload["actions"]]
        assert types == ["revise", "continue", "stop"]
        revise_id = offered.payload["actions"][0]["id"]
        stop_id = offered.payload["actions"][2]["id"]

        refused = await runs.decide(revise_id, user_id="USTRANGER")
        assert refused.outcome == DecisionOutcome.NOT_AUTHORISED
        assert (await store.runs.get(parked.id)).status == RunStatus.WAITING_APPROVAL

        approved = await runs.decide(revise_id, user_id="UBOSS")
        assert approved.outcome == DecisionOutcome.APPROVED
        second = await runs.decide(revise_id, user_id="UREQ")
        assert second.outcome == DecisionOutcome.ALREADY_DECIDED
        sibling = await runs.decide(stop_id, user_id="UREQ")
        assert sibling.outcome == DecisionOutcome.ALREADY_DECIDED

        finished = await wait_for_status(store, parked.id, FINISHED)
        assert finished.status == RunStatus.COMPLETED
        events = await store.runs.events(parked.id)
        result = [e for e in events if e.kind == ev.ACTION_RESULT][0]
        assert result.payload["decided_by"] == "UBOSS" and result.payload["type"] == "revise"
        # The feedback reached the team: it is in the worker's saved model context.
        worker_context = json.dumps(
            json.loads(finished.team_state or "{}")["agent_states"]["worker"]
        )
        assert "The sum is wrong: 2+2 is 4." in worker_context
        agent = [e.payload["content"] for e in events if e.kind == ev.AGENT_MESSAGE]
        assert agent == ["2+2=5", "Correct. TERMINATE"]
    finally:
        await runs.stop()
        await store.close()


async def test_decision_after_cancel_is_refused_and_cancel_is_recorded(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["bad"], ["x"])
    settings, store = await _open(tmp_path, secret_key, team)
    await store.credentials.put(Owner("T1", "UREQ", "openrouter"), KEY, actor_id="UREQ")
    verifier = ScriptedVerifier(
        [verdict("fail", "Wrong.", [{"type": "continue", "label": "Go on", "params": {}}])]
    )
    runs = manager(store, settings, verifier)
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        parked = await wait_for_status(store, started.run.id, {RunStatus.WAITING_APPROVAL})
        offered = [e for e in await store.runs.events(parked.id) if e.kind == ev.ACTIONS_OFFERED][
            -1
        ]
        assert await runs.cancel(parked.id, user_id="USTRANGER") == CancelOutcome.NOT_AUTHORISED
        assert await runs.cancel(parked.id, user_id="UREQ") == CancelOutcome.CANCELLED
        assert await runs.cancel(parked.id, user_id="UREQ") == CancelOutcome.ALREADY_FINISHED
        late = await runs.decide(offered.payload["actions"][0]["id"], user_id="UREQ")
        assert late.outcome == DecisionOutcome.ALREADY_DECIDED
        run = await store.runs.get(parked.id)
        assert run.status == RunStatus.CANCELLED and run.cancelled_by == "UREQ"
        audit = await store.audit.list(workspace_id="T1")
        assert any(a.action == "run_cancelled" and a.actor_id == "UREQ" for a in audit)
    finally:
        await runs.stop()
        await store.close()


async def test_max_turns_ends_the_run(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["a", "b", "c"], ["not yet", "still not", "no"])
    settings, store = await _open(tmp_path, secret_key, team, max_turns=3)
    await store.credentials.put(Owner("T1", "UREQ", "openrouter"), KEY, actor_id="UREQ")
    runs = manager(store, settings)
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        run = await wait_for_status(store, started.run.id, FINISHED)
        assert run.status == RunStatus.COMPLETED and run.turns == 3
        assert "MAX_TURNS=3" in (run.outcome or "")
    finally:
        await runs.stop()
        await store.close()


async def test_credential_timeout_ends_the_run_with_a_clear_event(
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
        await wait_for_status(store, started.run.id, {RunStatus.WAITING_CREDENTIAL})
        async with store.engine.begin() as connection:
            await connection.execute(
                update(CredentialRequestRow).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        run = await wait_for_status(store, started.run.id, FINISHED)
        assert run.status == RunStatus.FAILED
        events = await store.runs.events(run.id)
        assert events[-2].kind == ev.ERROR and events[-2].payload["code"] == "credential_timeout"
        assert "CREDENTIAL_TIMEOUT_S" in events[-2].payload["text"]
    finally:
        await runs.stop()
        await store.close()


async def test_malformed_verdict_is_recorded_as_uncertain(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["answer"], ["fine TERMINATE"])
    settings, store = await _open(tmp_path, secret_key, team)
    await store.credentials.put(Owner("T1", "UREQ", "openrouter"), KEY, actor_id="UREQ")
    runs = manager(store, settings, ScriptedVerifier(["this is not json", '{"verdict": "maybe"}']))
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        run = await wait_for_status(store, started.run.id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        verdicts = [
            e.payload for e in await store.runs.events(run.id) if e.kind == ev.VERIFIER_RESULT
        ]
        assert [v["verdict"] for v in verdicts] == ["uncertain", "uncertain"]
        assert "not valid verdict JSON" in verdicts[0]["reason"]
    finally:
        await runs.stop()
        await store.close()


async def test_a_run_slack_will_not_show_is_failed_and_its_key_request_closed(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["Result."], ["Good. TERMINATE"])
    settings, store = await _open(tmp_path, secret_key, team)
    runs = manager(store, settings)
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="go"
        )
        waiting = await wait_for_status(store, started.run.id, {RunStatus.WAITING_CREDENTIAL})
        request_id = (await store.runs.events(waiting.id))[-1].payload["request_id"]
        assert await runs.abandon_unshowable(waiting.id, reason="channel_not_found")
        assert not await runs.abandon_unshowable(waiting.id, reason="channel_not_found")
        failed = await store.runs.get(waiting.id)
        assert failed.status == RunStatus.FAILED and "channel_not_found" in (failed.outcome or "")
        kinds = [e.kind for e in await store.runs.events(waiting.id)]
        assert kinds[-2:] == [ev.ERROR, ev.FINISHED]
        late = await runs.submit_credential(request_id, user_id="UREQ", secret=KEY)
        assert late.outcome == FulfilOutcome.ALREADY_RESOLVED and not late.run_resumed
    finally:
        await runs.stop()


async def test_a_stored_key_that_no_longer_decrypts_is_asked_for_again(
    tmp_path: Path, secret_key: str
) -> None:
    """SERVER_SECRET_KEY replaced without rotation: the old row cannot be read. The run asks
    for the key again, saying why, instead of failing every run of that user."""
    team = replay_team_file(tmp_path, ["Result."], ["Good. TERMINATE"])
    _, old_store = await _open(tmp_path, Fernet.generate_key().decode(), team)
    await old_store.credentials.put(Owner("T1", "UREQ", "openrouter"), KEY, actor_id="UREQ")
    await old_store.close()
    settings, store = await _open(tmp_path, secret_key, team)
    runs = manager(store, settings)
    await runs.start()
    try:
        started = await runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="go"
        )
        waiting = await wait_for_status(store, started.run.id, {RunStatus.WAITING_CREDENTIAL})
        request = (await store.runs.events(waiting.id))[-1]
        assert request.kind == ev.CREDENTIAL_REQUEST
        assert "could not be read" in request.payload["reason"]
        done = await runs.submit_credential(
            request.payload["request_id"], user_id="UREQ", secret=KEY
        )
        assert done.outcome == FulfilOutcome.STORED
        finished = await wait_for_status(store, waiting.id, FINISHED)
        assert finished.status == RunStatus.COMPLETED
    finally:
        await runs.stop()
        await store.close()
