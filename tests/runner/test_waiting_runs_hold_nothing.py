"""A run waiting for a key is rows in the database, not objects in the process: after
1,000 runs parked on a credential request, no type of object has grown by one per run
(counted by type with the garbage collector, not timed), and no task of theirs is alive."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from pathlib import Path

from cryptography.fernet import Fernet

from store import Store
from store.records import RunStatus
from store.settings import load_settings
from tests.runner.helpers import manager, replay_team_file

RUNS = 1_000


def _objects_by_type() -> Counter[str]:
    gc.collect()
    return Counter(type(o).__qualname__ for o in gc.get_objects())


async def test_a_thousand_waiting_runs_leave_no_object_per_run(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/wait.db",
        server_secret_key=Fernet.generate_key().decode(),
        team_config=str(replay_team_file(tmp_path, ["a"], ["TERMINATE"])),
        max_concurrent_runs=16,
    )
    store = await Store.open(settings)
    runs = manager(store, settings)
    await runs.start()
    try:
        # Warm up every path a parked run takes (imports, caches, pools) before counting.
        await runs.start_run(workspace_id="T1", channel_id="C1", requester_id="U0", task="w")
        await _until_waiting(store, 1)
        before = _objects_by_type()
        ids = []
        for n in range(RUNS):
            started = await runs.start_run(
                workspace_id="T1", channel_id="C1", requester_id=f"U{n + 1}", task=f"task {n}"
            )
            ids.append(started.run.id)
        await _until_waiting(store, 1 + len(ids))
        await asyncio.sleep(0.2)  # the last claims wind down
        grown = _objects_by_type() - before
        per_run = {kind: count for kind, count in grown.items() if count >= RUNS // 2}
        assert per_run == {}, grown.most_common(10)
        assert runs.active_run_ids == set()
        alive = [t for t in asyncio.all_tasks() if t.get_name().startswith("run-")]
        assert alive == []
    finally:
        await runs.stop()
        await store.close()


async def _until_waiting(store: Store, count: int) -> None:
    async with asyncio.timeout(120):
        while await store.runs.count_by_status(RunStatus.WAITING_CREDENTIAL) < count:
            await asyncio.sleep(0.1)
