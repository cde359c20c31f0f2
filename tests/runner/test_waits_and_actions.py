"""Durable waits (credential, approval), decisions, cancellation and limits."""

from __future__ import annotations

import asyncio
import gc
import json
from datetime import timedelta
from pathlib import Path

from autogen_agentchat.teams import BaseGroupChat
from cryptography.fernet import Fernet
from sqlalchemy import update

from runner.manager import CancelOutcome
from store import Store
from store import events as ev
from store.actions import DecisionOutcome
from store.key_requests import FulfilOutcome
from store.models import CredentialRequestRow, utcnow
from store.records import RunStatus
from tests.db import audit_entries
from tests.runner.helpers import (
    FINISHED,
    ScriptedVerifier,
    offered_actions,
    put_requester_key,
    replay_team_file,
    runner_settings,
    running_manager,
    start_run,
    verdict,
    wait_for_status,
)

KEY = "sk-wait-test-key-0002"


def _live_teams() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, BaseGroupChat))


async def _no_live_team(timeout: float = 5.0) -> int:
    """The teams still in memory once the parked run's claim has wound down: its status is
    written first, then the claim reads the log once more and closes its team."""
    deadline = asyncio.get_running_loop().time() + timeout
    while _live_teams() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    return _live_teams()


async def test_missing_key_waits_then_resumes_when_the_key_arrives(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["Result."], ["Good. TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "w.db")
    async with running_manager(settings) as (store, runs):
        run_id = await start_run(runs, "go")
        waiting = await wait_for_status(store, run_id, {RunStatus.WAITING_CREDENTIAL})
        assert runs.active_run_ids == set()
        assert await _no_live_team() == 0, "a waiting run must hold no team in memory"
        events = await store.runs.events(waiting.id)
        request_event = events[-1]
        assert request_event.kind == ev.CREDENTIAL_REQUEST
        assert (
            request_event.payload["user_id"] == "UREQ"
            and request_event.payload["provider"] == "openrouter"
        )

        wrong = await runs.keys.submit(
            request_event.payload["request_id"], user_id="UOTHER", secret=KEY
        )
        assert wrong.outcome == FulfilOutcome.WRONG_USER
        done = await runs.keys.submit(
            request_event.payload["request_id"], user_id="UREQ", secret=KEY
        )
        assert done.outcome == FulfilOutcome.STORED and done.run_resumed
        finished = await wait_for_status(store, waiting.id, FINISHED)
        assert finished.status == RunStatus.COMPLETED
        kinds = [e.kind for e in await store.runs.events(waiting.id)]
        assert kinds[:3] == [ev.RUN_STARTED, ev.CREDENTIAL_REQUEST, ev.CREDENTIAL_RECEIVED]
        assert kinds[-1] == ev.FINISHED and kinds.count(ev.AGENT_MESSAGE) == 2


async def test_failing_verdict_waits_for_approval_and_revise_feeds_back(
    tmp_path: Path, secret_key: str
) -> None:
    # Replay clients restart their script when the team is rebuilt on resume, so each agent
    # has one line; the HTTP tests show a revised answer with a stateful fake LLM.
    team = replay_team_file(tmp_path, ["2+2=5"], ["Correct. TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "w.db", approvers="UBOSS")
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
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run_id = await start_run(runs, "2+2?")
        parked = await wait_for_status(store, run_id, {RunStatus.WAITING_APPROVAL})
        assert await _no_live_team() == 0
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
        # The judged agent answers the feedback (not the next in the rotation); its replay
        # script starts again, so its words repeat.
        speakers = [e.payload["source"] for e in events if e.kind == ev.AGENT_MESSAGE]
        assert speakers == ["worker", "worker", "reviewer"]
        feedback = json.loads(finished.team_state or "{}")["agent_states"]["worker"]
        assert "worker, please revise" in json.dumps(feedback)


async def test_decision_after_cancel_is_refused_and_cancel_is_recorded(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["bad"], ["x"])
    settings = runner_settings(tmp_path, secret_key, team, "w.db")
    verifier = ScriptedVerifier(
        [verdict("fail", "Wrong.", [{"type": "continue", "label": "Go on", "params": {}}])]
    )
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run_id = await start_run(runs)
        parked = await wait_for_status(store, run_id, {RunStatus.WAITING_APPROVAL})
        actions = await offered_actions(store, parked.id)
        assert await runs.cancel(parked.id, user_id="USTRANGER") == CancelOutcome.NOT_AUTHORISED
        assert await runs.cancel(parked.id, user_id="UREQ") == CancelOutcome.CANCELLED
        assert await runs.cancel(parked.id, user_id="UREQ") == CancelOutcome.ALREADY_FINISHED
        late = await runs.decide(actions["continue"], user_id="UREQ")
        assert late.outcome == DecisionOutcome.RUN_NOT_WAITING  # the run is over
        run = await store.runs.get(parked.id)
        assert run.status == RunStatus.CANCELLED and run.cancelled_by == "UREQ"
        audit = await audit_entries(store, "T1")
        assert any(a["action"] == "run_cancelled" and a["actor_id"] == "UREQ" for a in audit)


async def test_max_turns_ends_the_run(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["a", "b", "c"], ["not yet", "still not", "no"])
    settings = runner_settings(tmp_path, secret_key, team, "w.db", max_turns=3)
    async with running_manager(settings, key=KEY) as (store, runs):
        run = await wait_for_status(store, await start_run(runs), FINISHED)
        assert run.status == RunStatus.COMPLETED and run.turns == 3
        assert "MAX_TURNS=3" in (run.outcome or "")


async def test_credential_timeout_ends_the_run_with_a_clear_event(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["a"], ["TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "w.db")
    async with running_manager(settings) as (store, runs):
        run_id = await start_run(runs)
        await wait_for_status(store, run_id, {RunStatus.WAITING_CREDENTIAL})
        async with store.engine.begin() as connection:
            await connection.execute(
                update(CredentialRequestRow).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        run = await wait_for_status(store, run_id, FINISHED)
        assert run.status == RunStatus.FAILED
        events = await store.runs.events(run.id)
        assert events[-2].kind == ev.ERROR and events[-2].payload["code"] == "credential_timeout"
        assert "CREDENTIAL_TIMEOUT_S" in events[-2].payload["text"]


async def test_malformed_verdict_is_recorded_as_uncertain(tmp_path: Path, secret_key: str) -> None:
    team = replay_team_file(tmp_path, ["answer"], ["fine TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "w.db")
    verifier = ScriptedVerifier(["this is not json", '{"verdict": "maybe"}'])
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run = await wait_for_status(store, await start_run(runs), FINISHED)
        assert run.status == RunStatus.COMPLETED
        verdicts = [
            e.payload for e in await store.runs.events(run.id) if e.kind == ev.VERIFIER_RESULT
        ]
        assert [v["verdict"] for v in verdicts] == ["uncertain", "uncertain"]
        assert "not valid verdict JSON" in verdicts[0]["reason"]


async def test_a_run_slack_will_not_show_is_failed_and_its_key_request_closed(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["Result."], ["Good. TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "w.db")
    async with running_manager(settings) as (store, runs):
        run_id = await start_run(runs, "go")
        waiting = await wait_for_status(store, run_id, {RunStatus.WAITING_CREDENTIAL})
        request_id = (await store.runs.events(waiting.id))[-1].payload["request_id"]
        assert await runs.abandon_unshowable(waiting.id, reason="channel_not_found")
        assert not await runs.abandon_unshowable(waiting.id, reason="channel_not_found")
        failed = await store.runs.get(waiting.id)
        assert failed.status == RunStatus.FAILED and "channel_not_found" in (failed.outcome or "")
        kinds = [e.kind for e in await store.runs.events(waiting.id)]
        assert kinds[-2:] == [ev.ERROR, ev.FINISHED]
        late = await runs.keys.submit(request_id, user_id="UREQ", secret=KEY)
        assert late.outcome == FulfilOutcome.ALREADY_RESOLVED and not late.run_resumed


async def test_a_stored_key_that_no_longer_decrypts_is_asked_for_again(
    tmp_path: Path, secret_key: str
) -> None:
    """SERVER_SECRET_KEY replaced without rotation: the old row cannot be read. The run asks
    for the key again, saying why, instead of failing every run of that user."""
    team = replay_team_file(tmp_path, ["Result."], ["Good. TERMINATE"])
    old_key = Fernet.generate_key().decode()
    old_store = await Store.open(runner_settings(tmp_path, old_key, team, "w.db"))
    await put_requester_key(old_store, KEY)
    await old_store.close()
    settings = runner_settings(tmp_path, secret_key, team, "w.db")
    async with running_manager(settings) as (store, runs):
        run_id = await start_run(runs, "go")
        waiting = await wait_for_status(store, run_id, {RunStatus.WAITING_CREDENTIAL})
        request = (await store.runs.events(waiting.id))[-1]
        assert request.kind == ev.CREDENTIAL_REQUEST
        assert "could not be read" in request.payload["reason"]
        done = await runs.keys.submit(request.payload["request_id"], user_id="UREQ", secret=KEY)
        assert done.outcome == FulfilOutcome.STORED
        finished = await wait_for_status(store, waiting.id, FINISHED)
        assert finished.status == RunStatus.COMPLETED
