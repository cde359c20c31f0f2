"""A stored credential never exists in plaintext: not in the database, not in any log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import text

from store import Store
from store.changes import ANY_RUN, RunChange
from store.crypto import Owner
from store.db import sqlite_path
from store.key_requests import KeyWanted
from store.records import RunStatus
from store.settings import load_settings

CANARY = "canary-7f3a9c1e-never-in-plaintext"  # not key-shaped: no scrubber can hide it


async def _store_canary(store: Store) -> None:
    owner = Owner("T1", "UCANARY", "openrouter")
    await store.credentials.put(owner, CANARY, actor_id="UCANARY")
    assert await store.credentials.reveal(owner, actor_id="UCANARY", run_id=None) == CANARY
    run, _ = await store.runs.create(
        workspace_id="T1", channel_id="C1", requester_id="UCANARY", task="use the key"
    )
    request = await store.requests.request(
        run,
        KeyWanted("github", "needs it"),
        expires_at=run.created_at.replace(year=run.created_at.year + 1),
        guard=ANY_RUN,
        change=RunChange(status=RunStatus.WAITING_CREDENTIAL),
    )
    assert request is not None
    await store.requests.fulfil(request.id, user_id="UCANARY", secret=CANARY + "-2")


async def test_canary_absent_from_sqlite_file_and_logs(
    tmp_path: Path, secret_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"sqlite+aiosqlite:///{tmp_path}/canary.db"
    logging.getLogger("sqlalchemy.engine").setLevel(logging.DEBUG)
    store = await Store.open(load_settings(database_url=url, server_secret_key=secret_key))
    try:
        await _store_canary(store)
    finally:
        await store.close()  # (the autouse isolated_logging fixture restores the level)

    database = sqlite_path(url)
    assert database is not None
    files = [database, *database.parent.glob(database.name + "-*")]
    assert any(path.stat().st_size > 0 for path in files)
    for path in files:
        assert CANARY.encode() not in path.read_bytes(), f"plaintext canary found in {path.name}"
    assert caplog.records, "the SQL log should have recorded statements"
    for record in caplog.records:
        assert CANARY not in record.getMessage()
        assert CANARY not in str(record.args)


@pytest.mark.postgres
async def test_canary_absent_from_every_postgres_column(secret_key: str) -> None:
    from tests.conftest import create_postgres_database, drop_postgres_database

    url = await create_postgres_database()
    store = await Store.open(load_settings(database_url=url, server_secret_key=secret_key))
    try:
        await _store_canary(store)
        async with store.engine.connect() as connection:
            tables = (
                await connection.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            ).scalars()
            for table in list(tables):
                rows = (await connection.execute(text(f'SELECT * FROM "{table}"'))).all()
                for row in rows:
                    for value in row:
                        raw = value if isinstance(value, bytes) else str(value).encode()
                        assert CANARY.encode() not in raw, f"plaintext canary in {table}"
    finally:
        await store.close()
        await drop_postgres_database(url)
