"""A run's requests for a credential, and the submission that answers one.

A request is opened in the same unit of work that parks its run, so nobody sees a waiting
run without its request (or the reverse). Fulfilling stores the key and wakes the run in
one transaction, on whichever replica received the submission.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

import store.events as ev
from store.changes import Guard, RunChange
from store.credentials import CredentialRepository
from store.crypto import Owner
from store.events import NewEvent
from store.models import CredentialRequestRow, utcnow
from store.records import CredentialRequest, RequestStatus, Run, RunStatus, record_of
from store.work import Database, Repository, RunWork, new_id


def _request(row: CredentialRequestRow) -> CredentialRequest:
    return record_of(CredentialRequest, row, status=RequestStatus(row.status))


@dataclass(frozen=True)
class KeyWanted:
    """Which credential a run waits for and why, in words for the person asked."""

    provider: str
    reason: str
    rejected: bool = False  # the key that was used was refused by the provider


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


class KeyRequestRepository(Repository):
    def __init__(self, db: Database, credentials: CredentialRepository) -> None:
        super().__init__(db)
        self._credentials = credentials

    @staticmethod
    async def open_in(
        work: RunWork, run: Run, wanted: KeyWanted, *, expires_at: datetime
    ) -> CredentialRequest:
        """Open a request for the run's requester and append its `credential_request`
        event, inside `work` (whose caller has just parked the run)."""
        row = CredentialRequestRow(
            id=new_id(),
            run_id=run.id,
            workspace_id=run.workspace_id,
            user_id=run.requester_id,
            provider=wanted.provider,
            reason=wanted.reason,
            status=RequestStatus.PENDING,
            expires_at=expires_at,
        )
        work.session.add(row)
        await work.session.flush()
        payload = {
            "request_id": row.id,
            "user_id": row.user_id,
            "provider": row.provider,
            "reason": row.reason,
            "expires_at": expires_at.isoformat(),
            "rejected": wanted.rejected,
        }
        await work.append(run.id, [NewEvent(ev.CREDENTIAL_REQUEST, payload)])
        return _request(row)

    async def request(
        self,
        run: Run,
        wanted: KeyWanted,
        *,
        expires_at: datetime,
        guard: Guard,
        change: RunChange,
        events_before: list[NewEvent] | None = None,
    ) -> CredentialRequest | None:
        """Park the run (`change`, if `guard` holds), append `events_before`, and open the
        request, in one transaction; None (nothing written) when the guard did not hold."""
        async with self._db.work() as work:
            if await work.write(run.id, change, guard, events_before or []) is None:
                return None
            return await self.open_in(work, run, wanted, expires_at=expires_at)

    async def get(self, request_id: str) -> CredentialRequest | None:
        async with self._db.reads() as session:
            row = await session.get(CredentialRequestRow, request_id)
            return _request(row) if row else None

    async def pending_providers(self, *, workspace_id: str, user_id: str) -> set[str]:
        """The providers the person's waiting runs ask them for."""
        async with self._db.reads() as session:
            rows = await session.scalars(
                select(CredentialRequestRow.provider).where(
                    CredentialRequestRow.workspace_id == workspace_id,
                    CredentialRequestRow.user_id == user_id,
                    CredentialRequestRow.status == RequestStatus.PENDING,
                )
            )
            return set(rows)

    async def expired(self, *, now: datetime) -> list[CredentialRequest]:
        """Pending requests whose time is up."""
        async with self._db.reads() as session:
            rows = await session.scalars(
                select(CredentialRequestRow)
                .where(
                    CredentialRequestRow.status == RequestStatus.PENDING,
                    CredentialRequestRow.expires_at <= now,
                )
                .order_by(CredentialRequestRow.created_at)
            )
            return [_request(row) for row in rows]

    async def expire(
        self,
        request_id: str,
        *,
        run_id: str,
        guard: Guard,
        change: RunChange,
        events: list[NewEvent],
    ) -> bool:
        """Close a pending request as expired and, when its run is as `guard` says, end the
        run (`change`, `events`) in the same transaction, so a crash cannot close the
        request yet leave its run waiting for it. False when it was not pending."""
        async with self._db.work() as work:
            await work.lock(run_id)
            if not await self._resolve(work.session, request_id, RequestStatus.EXPIRED):
                return False
            await work.write(run_id, change, guard, events)
            return True

    @staticmethod
    async def _resolve(session: AsyncSession, request_id: str, status: RequestStatus) -> bool:
        result = await session.execute(
            update(CredentialRequestRow)
            .where(
                CredentialRequestRow.id == request_id,
                CredentialRequestRow.status == RequestStatus.PENDING,
            )
            .values(status=status, resolved_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    @staticmethod
    async def close_for_finished_run(session: AsyncSession, run_id: str) -> None:
        """The unit of work's finish hook: a finished run answers no submission."""
        await session.execute(
            update(CredentialRequestRow)
            .where(
                CredentialRequestRow.run_id == run_id,
                CredentialRequestRow.status == RequestStatus.PENDING,
            )
            .values(status=RequestStatus.CANCELLED, resolved_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    async def fulfil(self, request_id: str, *, user_id: str, secret: str) -> FulfilResult:
        """Store the secret for the request's owner and wake its run, all in one transaction.

        The run goes back to `queued` (any replica may pick it up) once no other request of
        it is pending; what it is told on resuming is the runner's decision, made when it is
        claimed. Nothing is written unless every check passes."""
        async with self._db.work(urgent=True) as work:
            session = work.session
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
            await work.lock(row.run_id)
            # Claim the request first: of two concurrent submissions only one matches.
            claimed = await self._resolve(session, request_id, RequestStatus.FULFILLED)
            await session.refresh(row)
            if not claimed:  # another submission won the race meanwhile
                return await self._answered_already(session, row, owner, secret)
            await self._store_key(work, row, owner, secret)
            return FulfilResult(FulfilOutcome.STORED, _request(row), await self._wake(work, row))

    async def supply(self, owner: Owner, secret: str, *, actor_id: str) -> list[str]:
        """Store `owner`'s key and answer every pending request for it, in one transaction:
        a key given without naming a request (the web API's `POST /credentials`) resumes
        each run that waits for it, as the modal does for one. The runs woken, in order."""
        async with self._db.work(urgent=True) as work:
            session = work.session
            rows = list(
                await session.scalars(
                    select(CredentialRequestRow)
                    .where(
                        CredentialRequestRow.workspace_id == owner.workspace_id,
                        CredentialRequestRow.user_id == owner.user_id,
                        CredentialRequestRow.provider == owner.provider,
                        CredentialRequestRow.status == RequestStatus.PENDING,
                        CredentialRequestRow.expires_at >= utcnow(),
                    )
                    .order_by(CredentialRequestRow.created_at)
                )
            )
            # Runs first, in id order, then the key: the order `fulfil` takes them in (a
            # run, then its key), so a modal and this, at once, never wait on each other.
            for run_id in sorted({row.run_id for row in rows}):
                await work.lock(run_id)
            await self._credentials.store_in(session, owner, secret)
            work.audit(
                workspace_id=owner.workspace_id,
                actor_id=actor_id,
                action="credential_stored",
                subject=owner.provider,
                detail={"owner": owner.user_id, "requests": [row.id for row in rows]},
            )
            woken: list[str] = []
            for row in rows:
                if not await self._resolve(session, row.id, RequestStatus.FULFILLED):
                    continue  # answered meanwhile (a modal, another replica)
                received = {"request_id": row.id, "provider": row.provider, "user_id": row.user_id}
                await work.append(row.run_id, [NewEvent(ev.CREDENTIAL_RECEIVED, received)])
                if await self._wake(work, row):
                    woken.append(row.run_id)
            return woken

    async def _store_key(
        self, work: RunWork, row: CredentialRequestRow, owner: Owner, secret: str
    ) -> None:
        """The key, its audit entry and the run's `credential_received` event."""
        await self._credentials.store_in(work.session, owner, secret)
        work.audit(
            workspace_id=row.workspace_id,
            actor_id=row.user_id,
            action="credential_stored",
            subject=row.provider,
            run_id=row.run_id,
            detail={"owner": row.user_id, "request": row.id},
        )
        received = {"request_id": row.id, "provider": row.provider, "user_id": row.user_id}
        await work.append(row.run_id, [NewEvent(ev.CREDENTIAL_RECEIVED, received)])

    @staticmethod
    async def _wake(work: RunWork, row: CredentialRequestRow) -> bool:
        """Requeue the run if it waits for no other key; whether it was requeued."""
        still_pending = await work.session.scalar(
            select(CredentialRequestRow.id).where(
                CredentialRequestRow.run_id == row.run_id,
                CredentialRequestRow.status == RequestStatus.PENDING,
            )
        )
        if still_pending is not None:
            return False
        requeued = await work.change(
            row.run_id,
            RunChange(status=RunStatus.QUEUED),
            Guard.status_in([RunStatus.WAITING_CREDENTIAL]),
        )
        return requeued is not None

    async def _answered_already(
        self, session: AsyncSession, row: CredentialRequestRow, owner: Owner, secret: str
    ) -> FulfilResult:
        """The same key submitted again (a Slack retry, a double submit, two replicas at
        once) is a success; anything else on an answered request is refused."""
        if row.status == RequestStatus.FULFILLED and await self._credentials.holds(
            session, owner, secret
        ):
            return FulfilResult(FulfilOutcome.STORED, _request(row), False)
        return FulfilResult(FulfilOutcome.ALREADY_RESOLVED, _request(row))
