"""SQLite under concurrent writers: WAL, busy timeout and BEGIN IMMEDIATE keep it calm."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import update

from store import Store
from store.crypto import Owner
from store.models import RunRow
from store.settings import load_settings
from tests.db import add_event


async def test_fifty_concurrent_writers_never_see_database_is_locked(
    tmp_path: Path, secret_key: str
) -> None:
    store = await Store.open(
        load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/busy.db", server_secret_key=secret_key
        )
    )
    run, _ = await store.runs.create(
        workspace_id="T1", channel_id="C1", requester_id="U1", task="busy"
    )

    async def writer(index: int) -> None:
        # Each writer reads, then writes in the same unit of work: the pattern that deadlocks
        # on a deferred transaction's lock upgrade.
        owner = Owner("T1", f"U{index:03d}", "openrouter")
        await store.credentials.put(owner, f"sk-{index}", actor_id=owner.user_id)
        await add_event(store, run.id, "info", {"writer": index})
        assert await store.credentials.reveal(owner, actor_id=owner.user_id) == f"sk-{index}"

    try:
        results = await asyncio.gather(*(writer(i) for i in range(50)), return_exceptions=True)
        errors = [result for result in results if isinstance(result, BaseException)]
        assert errors == [], errors[:3]
        events = await store.runs.events(run.id)
        assert [event.seq for event in events] == list(range(1, 51))
    finally:
        await store.close()


async def test_reads_do_not_queue_behind_a_writer_on_sqlite(
    tmp_path: Path, secret_key: str
) -> None:
    """WAL lets readers see the last commit while a writer holds the lock; only sessions
    that may write take it up front."""
    store = await Store.open(
        load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db", server_secret_key=secret_key
        )
    )
    try:
        run, _ = await store.runs.create(
            workspace_id="T1", channel_id="C1", requester_id="U1", task="before"
        )
        holding, release = asyncio.Event(), asyncio.Event()

        async def writer() -> None:
            async with store.engine.begin() as connection:
                await connection.execute(update(RunRow).values(task="after"))
                holding.set()
                await release.wait()

        task = asyncio.create_task(writer())
        await holding.wait()
        seen = await asyncio.wait_for(store.runs.get(run.id), timeout=10)
        assert seen is not None and seen.task == "before"  # the last committed value
        release.set()
        await task
        assert (await store.runs.get(run.id)).task == "after"
    finally:
        await store.close()
