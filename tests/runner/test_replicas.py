"""Two replicas on one PostgreSQL: a key submitted to one resumes the run on either, and a
dead replica's run is taken over from its saved state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runner.manager import RunManager
from store import Store
from store import events as ev
from store.crypto import Owner
from store.records import RunStatus
from store.settings import load_settings
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.runner.helpers import (
    FINISHED,
    ScriptedVerifier,
    replay_team_file,
    verdict,
    wait_for_status,
)

pytestmark = pytest.mark.postgres


def _replica(store: Store, settings, name: str) -> RunManager:
    return RunManager(
        store,
        settings,
        verifier_client_factory=ScriptedVerifier([verdict()] * 20),
        instance_id=name,
        poll_interval_s=0.05,
    )


async def test_key_submitted_on_one_replica_resumes_the_run(
    tmp_path: Path, secret_key: str
) -> None:
    url = await create_postgres_database()
    team = replay_team_file(tmp_path, ["Result."], ["Fine. TERMINATE"])
    settings = load_settings(database_url=url, server_secret_key=secret_key, team_config=str(team))
    store_a, store_b = await Store.open(settings), await Store.open(settings)
    replica_a, replica_b = _replica(store_a, settings, "a"), _replica(store_b, settings, "b")
    await replica_a.start()
    try:
        started = await replica_a.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        await wait_for_status(store_a, started.run.id, {RunStatus.WAITING_CREDENTIAL})
        await replica_a.stop()  # replica A goes away while the run waits
        await replica_b.start()
        request = [
            e for e in await store_b.runs.events(started.run.id) if e.kind == ev.CREDENTIAL_REQUEST
        ][-1]
        await replica_b.keys.submit(
            request.payload["request_id"], user_id="UREQ", secret="sk-replica-key-1"
        )
        run = await wait_for_status(store_b, started.run.id, FINISHED)
        assert run.status == RunStatus.COMPLETED
    finally:
        await replica_b.stop()
        await store_a.close()
        await store_b.close()
        await drop_postgres_database(url)


async def test_only_one_replica_claims_each_run(tmp_path: Path, secret_key: str) -> None:
    url = await create_postgres_database()
    team = replay_team_file(tmp_path, ["Result."], ["Fine. TERMINATE"])
    settings = load_settings(
        database_url=url, server_secret_key=secret_key, team_config=str(team), max_concurrent_runs=2
    )
    stores = [await Store.open(settings) for _ in range(3)]
    replicas = [_replica(store, settings, f"r{i}") for i, store in enumerate(stores)]
    try:
        for index in range(6):
            await stores[0].credentials.put(
                Owner("T1", f"U{index}", "openrouter"), "sk-k-123456", actor_id="t"
            )
        ids = [
            (
                await replicas[0].start_run(
                    workspace_id="T1", channel_id="C1", requester_id=f"U{i}", task="t"
                )
            ).run.id
            for i in range(6)
        ]
        for replica in replicas:
            await replica.start()
        for run_id in ids:
            run = await wait_for_status(stores[0], run_id, FINISHED, timeout=30)
            assert run.status == RunStatus.COMPLETED
            kinds = [e.kind for e in await stores[0].runs.events(run_id)]
            assert kinds.count(ev.AGENT_MESSAGE) == 2 and kinds.count(ev.FINISHED) == 1
    finally:
        for replica in replicas:
            await replica.stop()
        for store in stores:
            await store.close()
        await drop_postgres_database(url)


async def test_a_key_submitted_on_replica_b_wakes_replica_a_without_a_poll(
    tmp_path: Path, secret_key: str
) -> None:
    """Replica A polls once an hour here: only PostgreSQL's NOTIFY from B (heard on A's
    LISTEN connection) can wake its scheduler to take the run again."""
    url = await create_postgres_database()
    team = replay_team_file(tmp_path, ["Result."], ["Fine. TERMINATE"])
    settings = load_settings(database_url=url, server_secret_key=secret_key, team_config=str(team))
    store_a, store_b = await Store.open(settings), await Store.open(settings)
    replica_a = RunManager(
        store_a,
        settings,
        verifier_client_factory=ScriptedVerifier([verdict()] * 20),
        instance_id="a",
        poll_interval_s=3600,
    )
    await replica_a.start()
    try:
        started = await replica_a.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        run_id = started.run.id
        await wait_for_status(store_a, run_id, {RunStatus.WAITING_CREDENTIAL})
        assert store_a.listening is not None and store_b.listening is not None
        heard_before = store_a.listening.heard[("run_ready", run_id)]
        request = [e for e in await store_b.runs.events(run_id) if e.kind == ev.CREDENTIAL_REQUEST]
        result = await store_b.requests.fulfil(
            request[-1].payload["request_id"], user_id="UREQ", secret="sk-replica-key-2"
        )
        assert result.run_resumed
        run = await wait_for_status(store_a, run_id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        # The wake-up came from B, over PostgreSQL: A heard "run_ready" for this run.
        assert store_a.listening.heard[("run_ready", run_id)] == heard_before + 1
        assert store_b.listening.heard[("event", run_id)] >= 1  # and B hears A's events
    finally:
        await replica_a.stop()
        await store_a.close()
        await store_b.close()
        await drop_postgres_database(url)


async def test_replicas_claiming_at_once_take_each_run_once(secret_key: str) -> None:
    """Four stores claim forty queued runs as fast as they can (FOR NO KEY UPDATE SKIP
    LOCKED): every run is claimed exactly once, and no claim waits on another's lock."""
    url = await create_postgres_database()
    settings = load_settings(database_url=url, server_secret_key=secret_key)
    stores = [await Store.open(settings) for _ in range(4)]
    try:
        ids = set()
        for n in range(40):
            run, _ = await stores[0].runs.create(
                workspace_id="T1", channel_id="C1", requester_id="UREQ", task=f"t{n}"
            )
            ids.add(run.id)

        async def claim_all(store: Store, owner: str) -> list[str]:
            claimed = []
            while (run := await store.runs.claim_next(owner=owner, lease_s=30)) is not None:
                claimed.append(run.id)
            return claimed

        results = await asyncio.gather(
            *(claim_all(store, f"r{n}") for n, store in enumerate(stores))
        )
        everything = [run_id for claimed in results for run_id in claimed]
        assert sorted(everything) == sorted(ids)  # each once, none left
    finally:
        for store in stores:
            await store.close()
        await drop_postgres_database(url)
