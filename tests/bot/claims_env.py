"""What the publishing-claim tests share: a store of their own, a run whose thread is in
Slack with one message to post, and a look at a run's claim row."""

from __future__ import annotations

from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from store import Store
from store import events as ev
from store.models import OutboxRow
from store.settings import load_settings
from tests.bot.live_env import run_with_thread
from tests.db import add_event


async def open_store(tmp_path: Path, secret_key: str) -> Store:
    return await Store.open(
        load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/claims.db", server_secret_key=secret_key
        )
    )


async def run_in_thread(store: Store, client: AsyncWebClient) -> str:
    """A run whose thread is in Slack, with one message ("m0") to post."""
    run = await run_with_thread(store, client)
    await add_event(store, run.id, ev.INFO, {"text": "m0"})
    return run.id


async def claim_of(store: Store, run_id: str) -> OutboxRow:
    async with store.engine.connect() as connection:
        return (await connection.execute(select(OutboxRow).where(OutboxRow.run_id == run_id))).one()
