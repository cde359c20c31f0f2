"""Schema: an empty database upgrades to head; a second start-up changes nothing."""

from __future__ import annotations

from sqlalchemy import inspect

from store import Store
from store.db import MIGRATIONS_DIR, current_revision
from store.settings import Settings

EXPECTED_TABLES = {
    "runs",
    "run_events",
    "credentials",
    "credential_requests",
    "offered_actions",
    "audit_log",
    "outbox",
    "outbox_messages",
    "alembic_version",
}


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def _schema(store: Store) -> dict[str, list[str]]:
    async with store.engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: {
                table: sorted(column["name"] for column in inspect(sync).get_columns(table))
                for table in inspect(sync).get_table_names()
            }
        )


async def test_empty_database_upgrades_to_head_and_second_start_is_a_no_op(
    settings: Settings,
) -> None:
    first = await Store.open(settings)
    try:
        assert await current_revision(first.engine) == _head()
        schema = await _schema(first)
        assert set(schema) == EXPECTED_TABLES
        run, _ = await first.runs.create(
            workspace_id="T1", channel_id="C1", requester_id="U1", task="survive restarts"
        )
    finally:
        await first.close()

    second = await Store.open(settings)
    try:
        assert await current_revision(second.engine) == _head()
        assert await _schema(second) == schema
        survivor = await second.runs.get(run.id)
        assert survivor is not None and survivor.task == "survive restarts"
    finally:
        await second.close()


def test_models_match_the_migrations() -> None:
    """A model change without a migration would be caught here (autogenerate finds no diff)."""
    import asyncio

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from store.db import create_engine, migrate
    from store.models import Base

    async def diff() -> list[object]:
        engine = create_engine("sqlite+aiosqlite:///./diff.db")
        await migrate(engine)
        async with engine.connect() as connection:
            result = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        await engine.dispose()
        return list(result)

    assert asyncio.run(diff()) == []


async def test_a_database_from_the_first_release_upgrades_with_its_runs(
    settings: Settings,
) -> None:
    """0001 → head keeps existing rows; the new columns get their defaults."""
    from alembic import command
    from sqlalchemy import text

    from store.db import alembic_config, create_engine

    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0001"))
        await connection.execute(
            text(
                "INSERT INTO runs (id, workspace_id, channel_id, requester_id, task, status, "
                "created_at, updated_at, turns, prompt_tokens, completion_tokens, recoveries, "
                "last_seq) VALUES ('r0001', 'T1', 'C1', 'U1', 'old run', 'queued', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, 0, 0, 0, 0)"
            )
        )
    await engine.dispose()
    store = await Store.open(settings)
    try:
        assert await current_revision(store.engine) == _head()
        run = await store.runs.get("r0001")
        assert run is not None and run.task == "old run" and run.active_s == 0
    finally:
        await store.close()
