"""The audit trail: who stored, used or deleted a credential, who decided or cancelled."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.base import Repository
from store.models import AuditRow
from store.records import AuditEntry


def add_audit(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor_id: str,
    action: str,
    subject: str,
    run_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an entry inside the caller's transaction, so it commits with what it records."""
    session.add(
        AuditRow(
            workspace_id=workspace_id,
            actor_id=actor_id,
            action=action,
            subject=subject,
            run_id=run_id,
            detail=detail or {},
        )
    )


class AuditRepository(Repository):
    async def record(self, **fields: Any) -> None:
        async with self._sessions.begin() as session:
            add_audit(session, **fields)

    async def list(self, *, workspace_id: str, limit: int = 100) -> list[AuditEntry]:
        async with self._reads() as session:
            rows = await session.scalars(
                select(AuditRow)
                .where(AuditRow.workspace_id == workspace_id)
                .order_by(AuditRow.id.desc())
                .limit(limit)
            )
            return [
                AuditEntry(
                    at=row.at,
                    workspace_id=row.workspace_id,
                    actor_id=row.actor_id,
                    action=row.action,
                    subject=row.subject,
                    run_id=row.run_id,
                    detail=dict(row.detail),
                )
                for row in rows
            ]
