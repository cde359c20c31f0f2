"""Leases, deadlines and shutdown: a live run is never handed to another replica by a
hiccup, a deadline aborts the model call itself, and an agent's key request survives a
failing verdict."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from autogen_core import CancellationToken, FunctionCall
from autogen_core.models import CreateResult, RequestUsage
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from runner.housekeeping import requeue_orphaned_runs
from runner.manager import RunManager
from runner.team import check_team_config
from runner.team_config import TeamConfigError
from runner.writes import ClaimedRunWriter, RunLost
from store import Store
from store import events as ev
from store.changes import RunChange
from store.models import RunRow, utcnow
from store.records import RunStatus
from store.settings import Settings, load_settings
from tests.fakes.llm_server import FakeLLMServer
from tests.runner.helpers import (
    FINISHED,
    ScriptedVerifier,
    choose,
    put_requester_key,
    replay_team_file,
    runner_settings,
    running_manager,
    start_run,
    verdict,
    wait_for_status,
)

KEY = "sk-lease-test-key-0006"
AGENT = "agent-model"


async def test_a_failed_lease_renewal_is_retried_not_fatal(
    tmp_path: Path, secret_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = replay_team_file(tmp_path, ["a"], ["b TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, run_lease_s=2)
    async with running_manager(settings, start=False) as (store, runs):
        run_id = await start_run(runs)
        claimed = await store.runs.claim_next(owner=runs.instance_id, lease_s=2)
        assert claimed is not None and claimed.id == run_id
        real_renew = store.runs.renew_leases
        calls = 0

        async def flaky_renew(*args: object, **kwargs: object) -> set[str]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise OperationalError("UPDATE runs", {}, Exception("connection reset"))
            return await real_renew(*args, **kwargs)

        monkeypatch.setattr(store.runs, "renew_leases", flaky_renew)
        token = CancellationToken()
        driving = asyncio.create_task(asyncio.Event().wait())  # stands for the run's turn
        runs._tasks[run_id] = (driving, token)
        keeper = asyncio.create_task(runs._keep_leases())
        try:
            for _ in range(100):
                if calls >= 3 or keeper.done():
                    break
                await asyncio.sleep(0.1)
            assert calls >= 3 and not keeper.done(), "the lease keeper gave up"
            assert not token.is_cancelled(), "one failed renewal must not stop a live run"
            # A renewal the database refuses (the run was taken or cancelled) stops it.
            await store.runs.change(run_id, RunChange(status=RunStatus.CANCELLED))
            for _ in range(100):
                if token.is_cancelled():
                    break
                await asyncio.sleep(0.1)
            assert token.is_cancelled()
        finally:
            keeper.cancel()
            driving.cancel()
            del runs._tasks[run_id]


async def test_one_write_renews_every_lease_a_replica_holds(
    tmp_path: Path, secret_key: str
) -> None:
    """Renewal is one statement per replica: its own running runs come back renewed,
    a run another replica holds or that ended does not (and is left as it was)."""
    team = replay_team_file(tmp_path, ["a"], ["b TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team)
    async with running_manager(settings, start=False) as (store, runs):
        mine = [await start_run(runs, task=f"mine {n}") for n in range(3)]
        for _ in mine:
            await store.runs.claim_next(owner="replica-a", lease_s=5)
        theirs = await start_run(runs, task="theirs")
        await store.runs.claim_next(owner="replica-b", lease_s=5)
        await store.runs.change(mine[2], RunChange(status=RunStatus.CANCELLED))
        before = {run_id: (await store.runs.get(run_id)).lease_expires_at for run_id in mine}
        held = await store.runs.renew_leases([*mine, theirs], owner="replica-a", lease_s=300)
        assert held == set(mine[:2])
        for run_id in mine[:2]:
            assert (await store.runs.get(run_id)).lease_expires_at > before[run_id]
        other = await store.runs.get(theirs)
        assert other.lease_owner == "replica-b" and other.status == RunStatus.RUNNING
        assert await store.runs.renew_leases([], owner="replica-a", lease_s=300) == set()


async def test_a_replica_that_lost_the_run_cannot_finish_it(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["a"], ["b TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team)
    async with running_manager(settings, start=False) as (store, runs):
        run_id = await start_run(runs)
        run = await store.runs.claim_next(owner="replica-b", lease_s=30)
        assert run is not None
        with pytest.raises(RunLost):
            await ClaimedRunWriter(store, settings, "replica-a").finish(
                run, RunStatus.FAILED, "a stale replica's error"
            )
        assert (await store.runs.get(run_id)).status == RunStatus.RUNNING
        assert [e.kind for e in await store.runs.events(run_id)] == [ev.RUN_STARTED]


async def test_a_renewal_between_the_orphan_scan_and_the_takeover_wins(
    tmp_path: Path, secret_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = replay_team_file(tmp_path, ["a"], ["b TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team)
    async with running_manager(settings, start=False) as (store, runs):
        run_id = await start_run(runs)
        await store.runs.claim_next(owner="replica-a", lease_s=30)
        async with store.engine.begin() as connection:
            await connection.execute(
                update(RunRow).values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )
        stale_scan = await store.runs.orphaned()
        assert [r.id for r in stale_scan] == [run_id]
        assert run_id in await store.runs.renew_leases([run_id], owner="replica-a", lease_s=30)

        async def scanned_before_the_renewal(**_: object) -> list:
            return stale_scan

        monkeypatch.setattr(store.runs, "orphaned", scanned_before_the_renewal)
        await requeue_orphaned_runs(store, running_here=set(), lease_s=30)
        run = await store.runs.get(run_id)
        assert run.status == RunStatus.RUNNING and run.lease_owner == "replica-a"
        assert run.recoveries == 0


@contextlib.asynccontextmanager
async def _provider_that_never_answers(
    tmp_path: Path, secret_key: str, **overrides: object
) -> AsyncIterator[tuple[Settings, asyncio.Event]]:
    """Settings for the default team on a fake LLM whose first call hangs for a minute;
    the event is set once that call is in flight."""
    async with FakeLLMServer(valid_keys={KEY}) as llm:
        entered = asyncio.Event()

        async def never(_request: dict) -> str:
            entered.set()
            await asyncio.sleep(60)
            return "too late"

        llm.script(AGENT, [never])
        yield (
            load_settings(
                database_url=f"sqlite+aiosqlite:///{tmp_path}/stalled.db",
                server_secret_key=secret_key,
                llm_base_url=llm.base_url,
                llm_model=AGENT,
                llm_max_retries=0,
                verifier_enabled=False,
                **overrides,
            ),
            entered,
        )


async def test_the_deadline_aborts_a_model_call_in_flight(tmp_path: Path, secret_key: str) -> None:
    """One second of RUN_TIMEOUT_S left and a provider that never answers: the run fails
    with the timeout instead of waiting for the call (which would take a minute)."""
    async with (
        _provider_that_never_answers(tmp_path, secret_key, run_timeout_s=10) as (settings, _),
        running_manager(settings, key=KEY, start=False) as (store, runs),
    ):
        run_id = await start_run(runs)
        async with store.engine.begin() as connection:
            await connection.execute(update(RunRow).values(active_s=9.0))
        await runs.start()
        run = await wait_for_status(store, run_id, FINISHED, timeout=20)
        assert run.status == RunStatus.FAILED
        error = [e for e in await store.runs.events(run_id) if e.kind == ev.ERROR][-1]
        assert error.payload["code"] == "timeout"


async def test_shutdown_past_the_grace_hands_a_stuck_turn_back(
    tmp_path: Path, secret_key: str
) -> None:
    async with (
        _provider_that_never_answers(tmp_path, secret_key) as (settings, entered),
        running_manager(settings, key=KEY) as (store, runs),
    ):
        run_id = await start_run(runs)
        await asyncio.wait_for(entered.wait(), timeout=10)
        await asyncio.wait_for(runs.stop(grace_s=0.2), timeout=20)
        run = await store.runs.get(run_id)
        assert run.status == RunStatus.QUEUED and run.lease_owner is None
        assert run.team_state is None  # no turn was saved: it starts again from the task
        infos = [e.payload.get("text") for e in await store.runs.events(run_id)]
        assert any("restarting" in str(text) for text in infos)


async def test_an_agents_key_request_survives_a_failing_verdict(
    tmp_path: Path, secret_key: str
) -> None:
    """The worker asks for a GitHub key (a tool call costing 1000+100 tokens) and the
    verifier fails the turn: the key is asked for first, then the verdict is given."""
    tool_call = CreateResult(
        finish_reason="function_calls",
        content=[
            FunctionCall(
                id="call-1",
                name="request_credential",
                arguments='{"provider": "github", "reason": "read the repository"}',
            )
        ],
        usage=RequestUsage(prompt_tokens=1000, completion_tokens=100),
        cached=False,
    )
    team = replay_team_file(tmp_path, [tool_call], ["Fine. TERMINATE"])
    verifier = ScriptedVerifier(
        [verdict("fail", "It only asked.", [{"type": "revise", "label": "Do it", "params": {}}])]
        + [verdict()] * 4
    )
    settings = runner_settings(tmp_path, secret_key, team)
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run_id = await start_run(runs)
        waiting = await wait_for_status(store, run_id, {RunStatus.WAITING_CREDENTIAL})
        assert waiting.prompt_tokens >= 1000 and waiting.completion_tokens >= 100
        request = [e for e in await store.runs.events(run_id) if e.kind == ev.CREDENTIAL_REQUEST]
        assert request[-1].payload["provider"] == "github"
        await runs.keys.submit(
            request[-1].payload["request_id"], user_id="UREQ", secret="ghp-test-token-123"
        )
        parked = await wait_for_status(store, run_id, {RunStatus.WAITING_APPROVAL})
        finished = await choose(store, runs, parked.id, "continue")
        assert finished.status == RunStatus.COMPLETED


async def test_magentic_one_is_refused_at_start_up(tmp_path: Path, secret_key: str) -> None:
    team = tmp_path / "m1.json"
    team.write_text(
        '{"provider": "autogen_agentchat.teams.MagenticOneGroupChat",'
        ' "component_type": "team", "config": {}}'
    )
    settings = runner_settings(tmp_path, secret_key, team)
    with pytest.raises(TeamConfigError, match="MagenticOne teams are not supported"):
        await check_team_config(settings)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(TeamConfigError, match="could not be read"):
        await check_team_config(runner_settings(tmp_path, secret_key, broken))
    await check_team_config(load_settings(server_secret_key=secret_key))  # the default team


async def test_a_dead_replicas_run_is_taken_up_when_its_lease_lapses_not_a_poll_later(
    tmp_path: Path, secret_key: str
) -> None:
    """This replica polls once an hour; another replica took a run with a 1 s lease and
    died. The scheduler looks for orphans when that lease lapses, so the run is taken up
    and finishes here without any poll."""
    team = replay_team_file(tmp_path, ["a"], ["b TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team)
    store = await Store.open(settings)
    try:
        await put_requester_key(store, KEY)
        runs = RunManager(
            store,
            settings,
            verifier_client_factory=ScriptedVerifier([verdict()] * 5),
            poll_interval_s=3600,
        )
        run_id = await start_run(runs)
        assert await store.runs.claim_next(owner="replica-dead", lease_s=1)
        assert await store.runs.next_lapse(owner=runs.instance_id) is not None
        await runs.start()
        try:
            run = await wait_for_status(store, run_id, FINISHED, timeout=30)
            assert run.status == RunStatus.COMPLETED and run.recoveries == 1
        finally:
            await runs.stop()
    finally:
        await store.close()
