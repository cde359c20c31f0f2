"""SQLite under concurrent writers: WAL, busy timeout and BEGIN IMMEDIATE keep it calm."""

from __future__ import annotations

import asyncio
from pathlib import Path

from store import Store
from store.crypto import Owner
from store.settings import load_settings


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
        await store.runs.append_event(run.id, "info", {"writer": index})
        assert await store.credentials.reveal(owner, actor_id=owner.user_id) == f"sk-{index}"

    try:
        results = await asyncio.gather(*(writer(i) for i in range(50)), return_exceptions=True)
        errors = [result for result in results if isinstance(result, BaseException)]
        assert errors == [], errors[:3]
        events = await store.runs.events(run.id)
        assert [event.seq for event in events] == list(range(1, 51))
    finally:
        await store.close()
