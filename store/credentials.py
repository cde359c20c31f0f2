"""Encrypted credentials and the requests that wait for them.

Values go in and out only through `put`, `reveal` and `fulfil`; every other method returns
metadata. Each use is audited.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.audit import add_audit
from store.base import Listener, Repository, new_id
from store.crypto import CredentialCipher, CredentialError, Owner
from store.models import CredentialRequestRow, CredentialRow, RunRow, utcnow
from store.records import CredentialInfo, CredentialRequest, RequestStatus, RunStatus
from store.runs import add_event, guarded_update

WORKSPACE_USER = "*"
"""The user id that marks a workspace-wide credential."""


def _info(row: CredentialRow) -> CredentialInfo:
    return CredentialInfo(
        workspace_id=row.workspace_id,
        user_id=row.user_id,
        provider=row.provider,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_used_at=row.last_used_at,
    )


def _request(row: CredentialRequestRow) -> CredentialRequest:
    return CredentialRequest(
        id=row.id,
        run_id=row.run_id,
        workspace_id=row.workspace_id,
        user_id=row.user_id,
        provider=row.provider,
        reason=row.reason,
        status=RequestStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        resolved_at=row.resolved_at,
    )


def _pending_row(
    run_id: str, workspace_id: str, user_id: str, provider: str, reason: str, expires_at: datetime
) -> CredentialRequestRow:
    return CredentialRequestRow(
        id=new_id(),
        run_id=run_id,
        workspace_id=workspace_id,
        user_id=user_id,
        provider=provider,
        reason=reason,
        status=RequestStatus.PENDING,
        expires_at=expires_at,
    )


class FulfilOutcome(StrEnum):
    STORED = "stored"
    NOT_FOUND = "not_found"
    WRONG_USER = "wrong_user"
    ALREADY_RESOLVED = "already_resolved"
    EXPIRED = "expired"


@dataclass(frozen=True)
class FulfilResult:
    outcome: FulfilOutcome
    request: CredentialRequest | None = None
    run_resumed: bool = False


class CredentialRepository(Repository):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notify: Listener,
        cipher: CredentialCipher,
        reads: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        super().__init__(sessions, notify, reads)
        self._cipher = cipher

    async def put(self, owner: Owner, secret: str, *, actor_id: str) -> None:
        async with self._sessions.begin() as session:
            await self._upsert(session, owner, secret)
            add_audit(
                session,
                workspace_id=owner.workspace_id,
                actor_id=actor_id,
                action="credential_stored",
                subject=owner.provider,
                detail={"owner": owner.user_id},
            )

    async def _upsert(self, session: AsyncSession, owner: Owner, secret: str) -> None:
        """Insert or replace in one statement, so two first-time submissions for the same
        owner cannot both insert (the unique owner constraint would fail one of them)."""
        ciphertext = self._cipher.encrypt(owner, secret)
        now = utcnow()
        dialect = session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(CredentialRow).values(
            workspace_id=owner.workspace_id,
            user_id=owner.user_id,
            provider=owner.provider,
            ciphertext=ciphertext,
            created_at=now,
            updated_at=now,
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["workspace_id", "user_id", "provider"],
                set_={"ciphertext": ciphertext, "updated_at": now},
            )
        )

    async def _holds(self, session: AsyncSession, owner: Owner, secret: str) -> bool:
        """Whether `secret` is what is stored for `owner` (compared, never returned)."""
        row = await session.scalar(self._select(owner))
        if row is None:
            return False
        try:
            stored = self._cipher.decrypt(owner, row.ciphertext)
        except CredentialError:
            return False
        return hmac.compare_digest(stored.encode(), secret.encode())

    @staticmethod
    def _select(owner: Owner):  # noqa: ANN205 - a SQLAlchemy Select
        return select(CredentialRow).where(
            CredentialRow.workspace_id == owner.workspace_id,
            CredentialRow.user_id == owner.user_id,
            CredentialRow.provider == owner.provider,
        )

    async def exists(self, owner: Owner) -> bool:
        async with self._reads() as session:
            return await session.scalar(self._select(owner)) is not None

    async def reveal(self, owner: Owner, *, actor_id: str, run_id: str | None = None) -> str | None:
        """Decrypt for use (never for display); None when absent. The use is audited."""
        async with self._sessions.begin() as session:
            row = await session.scalar(self._select(owner))
            if row is None:
                return None
            secret = self._cipher.decrypt(owner, row.ciphertext)
            row.last_used_at = utcnow()
            add_audit(
                session,
                workspace_id=owner.workspace_id,
                actor_id=actor_id,
                action="credential_used",
                subject=owner.provider,
                run_id=run_id,
                detail={"owner": owner.user_id},
            )
            return secret

    async def list_for_user(self, *, workspace_id: str, user_id: str) -> list[CredentialInfo]:
        async with self._reads() as session:
            rows = await session.scalars(
                select(CredentialRow)
                .where(CredentialRow.workspace_id == workspace_id, CredentialRow.user_id == user_id)
                .order_by(CredentialRow.provider)
            )
            return [_info(row) for row in rows]

    async def delete(self, owner: Owner, *, actor_id: str) -> bool:
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(CredentialRow).where(
                    CredentialRow.workspace_id == owner.workspace_id,
                    CredentialRow.user_id == owner.user_id,
                    CredentialRow.provider == owner.provider,
                )
            )
            if result.rowcount != 1:
                return False
            add_audit(
                session,
                workspace_id=owner.workspace_id,
                actor_id=actor_id,
                action="credential_deleted",
                subject=owner.provider,
                detail={"owner": owner.user_id},
            )
            return True

    async def rotate_all(self) -> tuple[int, int]:
        """Re-encrypt every row under the newest key. Returns (rotated, already current)."""
        rotated = current = 0
        async with self._reads() as session:
            ids = list(await session.scalars(select(CredentialRow.id).order_by(CredentialRow.id)))
        for row_id in ids:
            while True:  # again if the app replaced the key between our read and write
                async with self._sessions.begin() as session:
                    old = await session.scalar(
                        select(CredentialRow.ciphertext).where(CredentialRow.id == row_id)
                    )
                    if old is None:
                        break
                    if self._cipher.is_current(old):
                        current += 1
                        break
                    result = await session.execute(
                        update(CredentialRow)
                        .where(CredentialRow.id == row_id, CredentialRow.ciphertext == old)
                        .values(ciphertext=self._cipher.rotate(old))
                    )
                    if result.rowcount == 1:
                        rotated += 1
                        break
        return rotated, current

    async def request_and_wait(
        self,
        *,
        run_id: str,
        held_by: str | None,
        workspace_id: str,
        user_id: str,
        provider: str,
        reason: str,
        expires_at: datetime,
        event_payload: dict[str, Any],
        expected: list[RunStatus] | None = None,
        events_before: list[tuple[str, dict[str, Any]]] | None = None,
        **run_changes: Any,
    ) -> CredentialRequest | None:
        """Open a request, append its `credential_request` event (after `events_before`) and
        park the run, in one transaction. None (nothing written) when the run is no longer
        as `expected` or held by `held_by` (cancelled meanwhile)."""
        row = _pending_row(run_id, workspace_id, user_id, provider, reason, expires_at)
        async with self._sessions.begin() as session:
            changed = await guarded_update(
                session, run_id, expected=expected, held_by=held_by, changes=run_changes
            )
            if not changed:
                return None
            session.add(row)
            await session.flush()
            for kind, before in events_before or []:
                await add_event(session, run_id, kind, before)
            payload = {
                **event_payload,
                "request_id": row.id,
                "user_id": user_id,
                "provider": provider,
                "reason": reason,
                "expires_at": expires_at.isoformat(),
            }
            await add_event(session, run_id, "credential_request", payload)
            request = _request(row)
        self._notify("event", run_id)
        return request

    async def create_request(
        self,
        *,
        run_id: str,
        workspace_id: str,
        user_id: str,
        provider: str,
        reason: str,
        expires_at: datetime,
    ) -> CredentialRequest:
        row = _pending_row(run_id, workspace_id, user_id, provider, reason, expires_at)
        async with self._sessions.begin() as session:
            session.add(row)
        return _request(row)

    async def get_request(self, request_id: str) -> CredentialRequest | None:
        async with self._reads() as session:
            row = await session.get(CredentialRequestRow, request_id)
            return _request(row) if row else None

    async def pending_requests(
        self, *, run_id: str | None = None, expired_before: datetime | None = None
    ) -> list[CredentialRequest]:
        async with self._reads() as session:
            query = select(CredentialRequestRow).where(
                CredentialRequestRow.status == RequestStatus.PENDING
            )
            if run_id is not None:
                query = query.where(CredentialRequestRow.run_id == run_id)
            if expired_before is not None:
                query = query.where(CredentialRequestRow.expires_at <= expired_before)
            rows = await session.scalars(query.order_by(CredentialRequestRow.created_at))
            return [_request(row) for row in rows]

    async def resolve_request(
        self,
        request_id: str,
        status: RequestStatus,
        *,
        run_id: str | None = None,
        run_expected: list[RunStatus] | None = None,
        run_changes: dict[str, Any] | None = None,
        events: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> bool:
        """Close a pending request (expired or cancelled); False if it was not pending.
        With `run_id`, the run changes (when still as `run_expected`) and `events` are
        written in the same transaction, so a crash cannot close the request yet leave its
        run waiting for it."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(CredentialRequestRow)
                .where(
                    CredentialRequestRow.id == request_id,
                    CredentialRequestRow.status == RequestStatus.PENDING,
                )
                .values(status=status, resolved_at=utcnow())
            )
            if result.rowcount != 1:
                return False
            if run_id is not None and await guarded_update(
                session, run_id, expected=run_expected, held_by=None, changes=run_changes or {}
            ):
                for kind, payload in events or []:
                    await add_event(session, run_id, kind, payload)
        if run_id is not None and events:
            self._notify("event", run_id)
        return True

    async def _answered_already(
        self, session: AsyncSession, row: CredentialRequestRow, owner: Owner, secret: str
    ) -> FulfilResult:
        """The same key submitted again (a Slack retry, a double submit, two replicas at
        once) is a success; anything else on an answered request is refused."""
        if row.status == RequestStatus.FULFILLED and await self._holds(session, owner, secret):
            return FulfilResult(FulfilOutcome.STORED, _request(row), False)
        return FulfilResult(FulfilOutcome.ALREADY_RESOLVED, _request(row))

    async def fulfil(
        self,
        request_id: str,
        *,
        user_id: str,
        secret: str,
        resume_input: str | Callable[[str], str],
    ) -> FulfilResult:
        """Store the secret for the request's owner and wake its run, all in one transaction.

        The run goes back to `queued` (any replica may pick it up) once no other request of
        it is pending. It resumes with the input it was parked with, else `resume_input`
        (or `resume_input(provider)`). Nothing is written unless every check passes.
        """
        async with self._sessions.begin() as session:
            row = await session.get(CredentialRequestRow, request_id)
            if row is None:
                return FulfilResult(FulfilOutcome.NOT_FOUND)
            if row.user_id != user_id:
                return FulfilResult(FulfilOutcome.WRONG_USER, _request(row))
            owner = Owner(row.workspace_id, row.user_id, row.provider)
            if row.status != RequestStatus.PENDING:
                return await self._answered_already(session, row, owner, secret)
            if row.expires_at < utcnow():
                return FulfilResult(FulfilOutcome.EXPIRED, _request(row))
            # Claim the request first: of two concurrent submissions only one matches.
            claimed = await session.execute(
                update(CredentialRequestRow)
                .where(
                    CredentialRequestRow.id == request_id,
                    CredentialRequestRow.status == RequestStatus.PENDING,
                )
                .values(status=RequestStatus.FULFILLED, resolved_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            await session.refresh(row)
            if claimed.rowcount != 1:  # another submission won the race meanwhile
                return await self._answered_already(session, row, owner, secret)
            await self._upsert(session, owner, secret)
            add_audit(
                session,
                workspace_id=row.workspace_id,
                actor_id=user_id,
                action="credential_stored",
                subject=row.provider,
                run_id=row.run_id,
                detail={"owner": user_id, "request": row.id},
            )
            await add_event(
                session,
                row.run_id,
                "credential_received",
                {"request_id": row.id, "provider": row.provider, "user_id": user_id},
            )
            await session.flush()
            still_pending = await session.scalar(
                select(CredentialRequestRow.id).where(
                    CredentialRequestRow.run_id == row.run_id,
                    CredentialRequestRow.status == RequestStatus.PENDING,
                )
            )
            resumed = False
            if still_pending is None:
                result = await session.execute(
                    update(RunRow)
                    .where(
                        RunRow.id == row.run_id,
                        RunRow.status == RunStatus.WAITING_CREDENTIAL,
                    )
                    .values(
                        status=RunStatus.QUEUED,
                        resume_input=func.coalesce(
                            RunRow.resume_input,
                            resume_input(row.provider) if callable(resume_input) else resume_input,
                        ),
                        updated_at=utcnow(),
                    )
                )
                resumed = result.rowcount == 1
            fulfilled = _request(row)
        self._notify("event", fulfilled.run_id)
        if resumed:
            self._notify("run_ready", fulfilled.run_id)
        return FulfilResult(FulfilOutcome.STORED, fulfilled, resumed)
