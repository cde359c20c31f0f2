"""ThreadPace's wait: over once the thread is close enough (woken by the delivery that got
it there), bounded when nothing shows the thread, skipped for runs no thread shows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from autogen_core import CancellationToken

from runner.pacing import MAX_UNSHOWN, ThreadPace
from store import Store
from store import events as ev
from store.events import NewEvent
from store.records import NO_CHANNEL
from store.settings import load_settings


async def _run_with_backlog(store: Store, channel: str = "C1"):  # type: ignore[no-untyped-def]
    run, _ = await store.runs.create(
        workspace_id="T1",
        channel_id=channel,
        requester_id="U1",
        task="t",
        events=[NewEvent(ev.INFO, {"text": f"m{n}"}) for n in range(MAX_UNSHOWN + 3)],
    )
    return run


@pytest.fixture
async def store(tmp_path: Path, secret_key: str) -> AsyncIterator[Store]:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/pace.db", server_secret_key=secret_key
    )
    opened = await Store.open(settings)
    try:
        yield opened
    finally:
        await opened.close()


async def test_the_wait_ends_when_deliveries_bring_the_thread_close(store: Store) -> None:
    pace = ThreadPace(store, max_wait_s=3600)  # only a delivery can end this wait
    run = await _run_with_backlog(store)
    waiting = asyncio.create_task(pace.wait(run, CancellationToken()))
    assert await store.outbox.claim(run.id, owner="p", lease_s=30)
    for seq in (1, 2):
        await asyncio.sleep(0.05)
        assert not waiting.done(), f"it went on with {MAX_UNSHOWN + 3 - seq + 1} unshown"
        assert await store.outbox.delivered(run.id, seq, owner="p", ref=f"ts{seq}")
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert await store.outbox.delivered(run.id, 3, owner="p", ref="ts3")
    await asyncio.wait_for(waiting, timeout=5)  # MAX_UNSHOWN left: it goes on
    assert await store.outbox.unshown(run.id) == MAX_UNSHOWN


async def test_the_wait_is_bounded_cancellable_and_only_for_runs_in_slack(store: Store) -> None:
    run = await _run_with_backlog(store)
    await asyncio.wait_for(ThreadPace(store, max_wait_s=0.2).wait(run, CancellationToken()), 5)
    token = CancellationToken()
    waiting = asyncio.create_task(ThreadPace(store, max_wait_s=3600).wait(run, token))
    await asyncio.sleep(0.05)
    token.cancel()
    await asyncio.wait_for(waiting, timeout=5)
    unshown = await _run_with_backlog(store, channel=NO_CHANNEL)
    await asyncio.wait_for(ThreadPace(store, max_wait_s=3600).wait(unshown, CancellationToken()), 5)
