"""The audit trail: who stored, used or deleted a credential, who decided or cancelled.

Entries are only ever added inside the transaction of what they record (a unit of work's
session), so an entry exists exactly when its change does."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from store.models import AuditRow


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
