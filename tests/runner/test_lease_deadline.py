"""A replica whose lease renewals do not go through (a stuck statement, a pool with no
free connection) aborts its runs before their leases lapse: no run is ever driven by two
replicas at once, even while the renewal call itself is still waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from autogen_core import CancellationToken

from runner.housekeeping import requeue_orphaned_runs
from runner.manager import RunManager
from store import Store
from store.records import RunStatus
from store.settings import load_settings
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.runner.helpers import ScriptedVerifier, replay_team_file, verdict

LEASE_S = 2  # the smallest RUN_LEASE_S settings allow


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database: replicas share one (as in compose.yaml)."""
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


async def _until(condition, *, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    """Liveness only: poll `condition` (sync or async) until true, or fail."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.05)


@pytest.mark.postgres
async def test_a_stuck_lease_renewal_aborts_the_run_before_another_replica_takes_it(
    tmp_path: Path, secret_key: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = replay_team_file(tmp_path, ["a"], ["b TERMINATE"])
    settings = load_settings(
        database_url=postgres_url,
        server_secret_key=secret_key,
        team_config=str(team),
        run_lease_s=LEASE_S,
    )
    store_a = await Store.open(settings)
    store_b = await Store.open(settings)
    stuck = asyncio.Event()
    try:
        runs_a = RunManager(
            store_a,
            settings,
            verifier_client_factory=ScriptedVerifier([verdict()] * 5),
            instance_id="replica-a",
            poll_interval_s=3600,
        )
        started = await runs_a.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        run_id = started.run.id
        assert await store_a.runs.claim_next(owner="replica-a", lease_s=LEASE_S)
        real_renew = store_a.runs.renew_leases
        calls = 0

        async def renewal_that_waits(*args: object, **kwargs: object) -> set[str]:
            """The first renewal goes through; the next waits (for a pooled connection, say)
            until the test lets it go, then runs for real."""
            nonlocal calls
            calls += 1
            if calls > 1:
                await stuck.wait()
            return await real_renew(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store_a.runs, "renew_leases", renewal_that_waits)
        token = CancellationToken()
        driving = asyncio.create_task(asyncio.Event().wait())  # stands for the run's turn
        runs_a._tasks[run_id] = (driving, token)
        keeper = asyncio.create_task(runs_a._keep_leases())
        try:
            await _until(lambda: calls >= 2, timeout_s=10)  # one renewal done, one stuck

            async def taken_by_b() -> bool:
                await requeue_orphaned_runs(store_b, running_here=set(), lease_s=LEASE_S)
                return (await store_b.runs.get(run_id)).status == RunStatus.QUEUED

            await _until(taken_by_b, timeout_s=10 * LEASE_S)
            claimed = await store_b.runs.claim_next(owner="replica-b", lease_s=LEASE_S)
            assert claimed is not None and claimed.id == run_id  # B drives it now
            a_still_drives = not token.is_cancelled()
            stuck.set()  # the renewal returns at last: A learns it lost the run
            await _until(token.is_cancelled, timeout_s=10)
            assert not a_still_drives, "replica B took the run up while A still drove it"
        finally:
            stuck.set()
            keeper.cancel()
            driving.cancel()
            runs_a._tasks.pop(run_id, None)
    finally:
        stuck.set()
        await store_a.close()
        await store_b.close()
