"""The runner over real HTTP: AutoGen's OpenAIChatCompletionClient against the tests' own
OpenAI-compatible server, with the key injected from the credential store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from runner.llm import openai_verifier_factory
from runner.manager import CancelOutcome, RunManager
from store import Store
from store import events as ev
from store.records import RunStatus
from store.settings import load_settings
from tests.fakes.llm_server import FakeLLMServer, HttpError
from tests.runner.helpers import FINISHED, put_requester_key, start_run, wait_for_status

KEY = "sk-http-stored-key-7c1d"
AGENT, VERIFIER = "agent-model", "verifier-model"


def _verdict(kind: str = "pass") -> str:
    return json.dumps({"verdict": kind, "reason": "ok", "suggested_actions": []})


@pytest.fixture
async def stack(tmp_path: Path, secret_key: str):
    async with FakeLLMServer(valid_keys={KEY}) as llm:
        settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/h.db",
            server_secret_key=secret_key,
            llm_base_url=llm.base_url,
            llm_model=AGENT,
            verifier_model=VERIFIER,
            llm_max_retries=1,
            max_concurrent_runs=1,
        )
        store = await Store.open(settings)
        runs = RunManager(
            store,
            settings,
            verifier_client_factory=openai_verifier_factory(settings),
            poll_interval_s=0.05,
        )
        await runs.start()
        try:
            yield llm, store, runs
        finally:
            await runs.stop(grace_s=5)
            await store.close()


async def test_default_team_runs_with_the_stored_key_as_bearer(stack) -> None:
    llm, store, runs = stack
    await put_requester_key(store, KEY)
    llm.script(AGENT, ["1. Choose a park.", "Park chosen: Riverside.", "Good plan. TERMINATE"])
    llm.default(VERIFIER, _verdict())
    run = await wait_for_status(store, await start_run(runs, "Plan a picnic"), FINISHED)
    assert run.status == RunStatus.COMPLETED and run.turns == 3
    assert len(llm.requests_for(AGENT)) == 3 and len(llm.requests_for(VERIFIER)) == 3
    assert {r.headers["Authorization"] for r in llm.requests} == {f"Bearer {KEY}"}
    assert run.prompt_tokens > 0 and run.completion_tokens > 0
    assert all(KEY not in str(r.json) for r in llm.requests)


async def test_rejected_key_asks_again_and_resumes(stack) -> None:
    llm, store, runs = stack
    await put_requester_key(store, "sk-wrong-key-000000")
    llm.script(AGENT, ["1. Plan.", "Done.", "TERMINATE"])
    llm.default(VERIFIER, _verdict())
    run_id = await start_run(runs, "Plan a picnic")
    waiting = await wait_for_status(store, run_id, {RunStatus.WAITING_CREDENTIAL})
    request = [e for e in await store.runs.events(waiting.id) if e.kind == ev.CREDENTIAL_REQUEST][
        -1
    ]
    assert request.payload["rejected"] is True and "rejected" in request.payload["reason"]
    assert all(r.status == 401 for r in llm.requests)
    await runs.keys.submit(request.payload["request_id"], user_id="UREQ", secret=KEY)
    run = await wait_for_status(store, run_id, FINISHED)
    assert run.status == RunStatus.COMPLETED
    texts = str([e.payload for e in await store.runs.events(run_id)])
    assert "sk-wrong-key-000000" not in texts and KEY not in texts


async def test_rate_limits_retry_then_fail_with_a_clear_error(stack) -> None:
    llm, store, runs = stack
    await put_requester_key(store, KEY)
    fast = {"retry-after-ms": "1"}
    llm.script(
        AGENT, [HttpError(429, headers=fast), "1. Plan.", *[HttpError(503, headers=fast)] * 4]
    )
    llm.default(VERIFIER, _verdict())
    run = await wait_for_status(store, await start_run(runs, "Plan a picnic"), FINISHED)
    assert run.status == RunStatus.FAILED
    events = await store.runs.events(run.id)
    error = [e for e in events if e.kind == ev.ERROR][-1]
    assert (
        error.payload["code"] == "provider_unavailable"
        and "after 1 retries" in error.payload["text"]
    )
    assert [e.payload["content"] for e in events if e.kind == ev.AGENT_MESSAGE] == ["1. Plan."]


async def test_cancel_aborts_a_turn_at_once(stack) -> None:
    llm, store, runs = stack
    await put_requester_key(store, KEY)
    entered = asyncio.Event()

    async def slow(_request: dict) -> str:
        entered.set()
        await asyncio.sleep(60)
        return "too late"

    llm.script(AGENT, [slow])
    run_id = await start_run(runs, "Plan a picnic")
    await asyncio.wait_for(entered.wait(), timeout=10)
    assert await runs.cancel(run_id, user_id="UREQ") == CancelOutcome.CANCELLED
    for _ in range(200):
        if run_id not in runs.active_run_ids:
            break
        await asyncio.sleep(0.05)
    assert run_id not in runs.active_run_ids, "the turn was not aborted"
    run = await store.runs.get(run_id)
    assert run.status == RunStatus.CANCELLED and run.cancelled_by == "UREQ"
    kinds = [e.kind for e in await store.runs.events(run_id)]
    assert kinds.count(ev.FINISHED) == 1 and ev.AGENT_MESSAGE not in kinds


async def test_excess_runs_queue_and_say_so(stack) -> None:
    llm, store, runs = stack
    await put_requester_key(store, KEY)
    gate = asyncio.Event()

    async def held(_request: dict) -> str:
        await gate.wait()
        return "TERMINATE"

    llm.set_handler(AGENT, held)
    llm.default(VERIFIER, _verdict())
    first = await start_run(runs, "Plan a picnic")
    await wait_for_status(store, first, {RunStatus.RUNNING})
    second = await runs.start_run(
        workspace_id="T1", channel_id="C1", requester_id="UREQ", task="second"
    )
    assert second.queued_ahead == 0
    info = [e for e in await store.runs.events(second.run.id) if e.kind == ev.INFO]
    assert info and "Queued" in info[0].payload["text"]
    assert (await store.runs.get(second.run.id)).status == RunStatus.QUEUED
    gate.set()
    for run_id in (first, second.run.id):
        assert (await wait_for_status(store, run_id, FINISHED)).status == RunStatus.COMPLETED


async def test_token_budget_stops_the_run(tmp_path: Path, secret_key: str) -> None:
    async with FakeLLMServer(valid_keys={KEY}) as llm:
        settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/b.db",
            server_secret_key=secret_key,
            llm_base_url=llm.base_url,
            llm_model=AGENT,
            verifier_enabled=False,
            run_token_budget=5,
        )
        store = await Store.open(settings)
        runs = RunManager(store, settings, poll_interval_s=0.05)
        await runs.start()
        try:
            await put_requester_key(store, KEY)
            llm.default(AGENT, "A long answer that uses more than five tokens for sure.")
            run = await wait_for_status(store, await start_run(runs, "Plan a picnic"), FINISHED)
            assert run.status == RunStatus.FAILED and run.turns == 1
            error = [e for e in await store.runs.events(run.id) if e.kind == ev.ERROR][-1]
            assert error.payload["code"] == "token_budget"
        finally:
            await runs.stop()
            await store.close()


async def test_default_team_ends_only_when_the_reviewer_says_terminate(stack) -> None:
    llm, store, runs = stack
    await put_requester_key(store, KEY)
    llm.script(AGENT, ["1. Plan.", "Done, TERMINATE", "Approved. TERMINATE"])
    llm.default(VERIFIER, _verdict())
    run = await wait_for_status(store, await start_run(runs, "Plan a picnic"), FINISHED)
    events = await store.runs.events(run.id)
    sources = [e.payload["source"] for e in events if e.kind == ev.AGENT_MESSAGE]
    assert sources == ["planner", "worker", "reviewer"] and run.status == RunStatus.COMPLETED
