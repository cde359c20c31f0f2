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
    "run_feedback",
    "inbound_messages",
    "api_tokens",
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


async def test_posted_state_moves_to_the_outbox_so_nothing_is_posted_again(
    settings: Settings,
) -> None:
    """0002 kept what Slack was shown on the events themselves; after 0003 the outbox says
    the same: delivered up to the last posted event, prompts still open, parts in flight."""
    import json

    from alembic import command
    from sqlalchemy import text

    from store.db import alembic_config, create_engine

    engine = create_engine(settings.database_url)
    events = [  # seq, kind, payload, slack_ts, posted, parts_posted
        (1, "run_started", {"task": "t"}, "100.1", True, 0),
        (2, "credential_request", {"request_id": "q1", "provider": "github"}, "100.2", True, 0),
        (3, "credential_request", {"request_id": "q2", "provider": "tavily"}, "100.3", True, 0),
        (4, "credential_received", {"request_id": "q1", "provider": "github"}, "100.2", True, 0),
        (5, "agent_message", {"source": "w", "content": "long", "turn": 1}, "100.5", False, 1),
        (6, "info", {"text": "after"}, None, False, 0),
    ]
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0002"))
        await connection.execute(
            text(
                "INSERT INTO runs (id, workspace_id, channel_id, thread_ts, requester_id, task, "
                "status, created_at, updated_at, turns, prompt_tokens, completion_tokens, "
                "recoveries, last_seq, active_s, publisher_owner, publisher_expires_at) VALUES "
                "('r0002', 'T1', 'C1', '100.1', 'U1', 'old run', 'running', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP, 1, 0, 0, 0, 6, 0, 'replica-old', '2000-01-01 00:00:00')"
            )
        )
        for seq, kind, payload, ts, posted, parts in events:
            await connection.execute(
                text(
                    "INSERT INTO run_events (run_id, seq, kind, payload, created_at, slack_ts, "
                    "parts_posted, posted_at) VALUES ('r0002', :seq, :kind, :payload, "
                    "CURRENT_TIMESTAMP, :ts, :parts, "
                    + ("CURRENT_TIMESTAMP" if posted else "NULL")
                    + ")"
                ),
                {
                    "seq": seq,
                    "kind": kind,
                    "payload": json.dumps(payload),
                    "ts": ts,
                    "parts": parts,
                },
            )
    await engine.dispose()
    store = await Store.open(settings)
    try:
        backlog = await store.outbox.backlog("r0002")
        assert backlog is not None
        assert [e.seq for e in backlog.events] == [5, 6]  # nothing posted goes out again
        assert (backlog.parts_done, backlog.part_ref) == (1, "100.5")
        assert [p.ref for p in await store.outbox.open_prompts("r0002")] == ["100.3"]
        answered = await store.outbox.prompt("r0002", "request:q1")
        assert answered is not None and answered.ref == "100.2"
        shown = await store.outbox.shown("r0002", 1)
        assert shown is not None and shown.event.kind == "run_started"
        assert await store.outbox.pending() == ["r0002"]
        # The dead publisher's claim came along and has lapsed: another may take over.
        assert await store.outbox.claim("r0002", owner="replica-new", lease_s=30)
    finally:
        await store.close()
    # And back: 0002's columns say again what was posted, the half-posted message included.
    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0002"))
        rows = await connection.execute(
            text(
                "SELECT seq, slack_ts, parts_posted, posted_at IS NOT NULL FROM run_events "
                "WHERE run_id = 'r0002' ORDER BY seq"
            )
        )
        restored = [tuple(row) for row in rows]
    await engine.dispose()
    assert restored == [
        (1, "100.1", 0, True),
        (2, "100.2", 0, True),
        (3, "100.3", 0, True),
        (4, "100.2", 0, True),
        (5, "100.5", 1, False),
        (6, None, 0, False),
    ]


async def test_the_outbox_migration_goes_down_and_up_again(settings: Settings) -> None:
    from alembic import command

    from store.db import alembic_config, create_engine

    store = await Store.open(settings)
    run, _ = await store.runs.create(
        workspace_id="T1", channel_id="C1", requester_id="U1", task="both ways"
    )
    await store.close()
    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0002"))
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
    await engine.dispose()
    store = await Store.open(settings)
    try:
        assert (await store.runs.get(run.id)).task == "both ways"
    finally:
        await store.close()
