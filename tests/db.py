"""What tests read from (and add to) the database directly, beside the product's API.

The product keeps no methods that only tests need; these helpers read its tables instead."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from store import Store
from store.changes import NO_CHANGE
from store.events import NewEvent
from store.models import (
    AuditRow,
    CredentialRequestRow,
    OfferedActionRow,
    OutboxRow,
    RunEventRow,
    RunRow,
    utcnow,
)
from store.records import RequestStatus, Run, RunEvent
from store.work import to_event, to_run


async def add_event(store: Store, run_id: str, kind: str, payload: dict[str, Any]) -> RunEvent:
    """Append one event to a run, as any writer would (without changing the run)."""
    written = await store.runs.change(run_id, NO_CHANGE, events=[NewEvent(kind, payload)])
    assert written is not None
    return written.events[0]


async def all_runs(store: Store) -> list[Run]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(select(RunRow).order_by(RunRow.created_at))
        return [to_run(RunRow(**row._mapping)) for row in rows]


async def audit_actions(store: Store, workspace_id: str) -> list[str]:
    """The audit trail's actions in the workspace, newest first."""
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(AuditRow.action)
            .where(AuditRow.workspace_id == workspace_id)
            .order_by(AuditRow.id.desc())
        )
        return [row.action for row in rows]


async def audit_entries(store: Store, workspace_id: str) -> list[dict[str, Any]]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(AuditRow).where(AuditRow.workspace_id == workspace_id).order_by(AuditRow.id)
        )
        return [dict(row._mapping) for row in rows]


async def undelivered(store: Store, run_id: str) -> list[RunEvent]:
    """The run's events the publisher has not yet handled, in order."""
    async with store.engine.connect() as connection:
        delivered = await connection.scalar(
            select(OutboxRow.delivered_seq).where(OutboxRow.run_id == run_id)
        )
        rows = await connection.execute(
            select(RunEventRow)
            .where(RunEventRow.run_id == run_id, RunEventRow.seq > (delivered or 0))
            .order_by(RunEventRow.seq)
        )
        return [to_event(RunEventRow(**row._mapping)) for row in rows]


async def parts_done(store: Store, run_id: str) -> int:
    async with store.engine.connect() as connection:
        done = await connection.scalar(
            select(OutboxRow.parts_done).where(OutboxRow.run_id == run_id)
        )
        return int(done or 0)


async def pending_request_ids(store: Store, run_id: str) -> list[str]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(CredentialRequestRow.id).where(
                CredentialRequestRow.run_id == run_id,
                CredentialRequestRow.status == RequestStatus.PENDING,
            )
        )
        return [row.id for row in rows]


async def decided_long_ago(store: Store, action_id: str) -> None:
    """Date an approval an hour back: what a decision by a process that died looks like."""
    async with store.engine.begin() as connection:
        await connection.execute(
            update(OfferedActionRow)
            .where(OfferedActionRow.id == action_id)
            .values(decided_at=utcnow() - timedelta(hours=1))
        )
