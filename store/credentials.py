"""Encrypted credentials: stored, used, listed and deleted, each use audited.

Values go in and out only through `put`, `reveal` and (for a key request) `store_in`;
every other method returns metadata.
"""

from __future__ import annotations

import hmac

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.crypto import CredentialCipher, CredentialError, Owner
from store.db import upsert
from store.models import CredentialRow, utcnow
from store.records import CredentialInfo, record_of
from store.work import Database, Repository

WORKSPACE_USER = "*"
"""The user id that marks a workspace-wide credential."""


def _info(row: CredentialRow) -> CredentialInfo:
    return record_of(CredentialInfo, row)


def _owned_by(owner: Owner) -> list[object]:
    return [
        CredentialRow.workspace_id == owner.workspace_id,
        CredentialRow.user_id == owner.user_id,
        CredentialRow.provider == owner.provider,
    ]


class CredentialRepository(Repository):
    def __init__(self, db: Database, cipher: CredentialCipher) -> None:
        super().__init__(db)
        self._cipher = cipher

    async def put(self, owner: Owner, secret: str, *, actor_id: str) -> None:
        async with self._db.work(urgent=True) as work:
            await self.store_in(work.session, owner, secret)
            work.audit(
                workspace_id=owner.workspace_id,
                actor_id=actor_id,
                action="credential_stored",
                subject=owner.provider,
                detail={"owner": owner.user_id},
            )

    async def store_in(self, session: AsyncSession, owner: Owner, secret: str) -> None:
        """Encrypt and insert or replace, inside the caller's transaction."""
        ciphertext = self._cipher.encrypt(owner, secret)
        now = utcnow()
        await upsert(
            session,
            CredentialRow,
            {
                "workspace_id": owner.workspace_id,
                "user_id": owner.user_id,
                "provider": owner.provider,
                "ciphertext": ciphertext,
                "created_at": now,
                "updated_at": now,
            },
            key=["workspace_id", "user_id", "provider"],
            update={"ciphertext": ciphertext, "updated_at": now},
        )

    async def holds(self, session: AsyncSession, owner: Owner, secret: str) -> bool:
        """Whether `secret` is what is stored for `owner` (compared, never returned)."""
        row = await session.scalar(select(CredentialRow).where(*_owned_by(owner)))
        if row is None:
            return False
        try:
            stored = self._cipher.decrypt(owner, row.ciphertext)
        except CredentialError:
            return False
        return hmac.compare_digest(stored.encode(), secret.encode())

    async def exists(self, owner: Owner) -> bool:
        async with self._db.reads() as session:
            found = await session.scalar(select(CredentialRow.id).where(*_owned_by(owner)))
            return found is not None

    async def reveal(self, owner: Owner, *, actor_id: str, run_id: str | None = None) -> str | None:
        """Decrypt for use (never for display); None when absent. The use is audited."""
        async with self._db.work() as work:
            row = await work.session.scalar(select(CredentialRow).where(*_owned_by(owner)))
            if row is None:
                return None
            secret = self._cipher.decrypt(owner, row.ciphertext)
            row.last_used_at = utcnow()
            work.audit(
                workspace_id=owner.workspace_id,
                actor_id=actor_id,
                action="credential_used",
                subject=owner.provider,
                run_id=run_id,
                detail={"owner": owner.user_id},
            )
            return secret

    async def values_to_hide(self, *, workspace_id: str, user_ids: list[str]) -> list[str]:
        """The stored values of these people (and the workspace's own), only so that text
        they wrote can be scrubbed of them before it goes anywhere: never used, never shown,
        so not audited as a use."""
        async with self._db.reads() as session:
            rows = await session.scalars(
                select(CredentialRow).where(
                    CredentialRow.workspace_id == workspace_id,
                    CredentialRow.user_id.in_([*user_ids, WORKSPACE_USER]),
                )
            )
            owned = [(Owner(workspace_id, row.user_id, row.provider), row) for row in rows]
        values = []
        for owner, row in owned:
            try:
                values.append(self._cipher.decrypt(owner, row.ciphertext))
            except CredentialError:  # unreadable with today's keys: nothing to hide
                continue
        return values

    async def list_for_user(self, *, workspace_id: str, user_id: str) -> list[CredentialInfo]:
        async with self._db.reads() as session:
            rows = await session.scalars(
                select(CredentialRow)
                .where(CredentialRow.workspace_id == workspace_id, CredentialRow.user_id == user_id)
                .order_by(CredentialRow.provider)
            )
            return [_info(row) for row in rows]

    async def delete(self, owner: Owner, *, actor_id: str) -> bool:
        async with self._db.work(urgent=True) as work:
            result = await work.session.execute(delete(CredentialRow).where(*_owned_by(owner)))
            if result.rowcount != 1:
                return False
            work.audit(
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
        async with self._db.reads() as session:
            ids = list(await session.scalars(select(CredentialRow.id).order_by(CredentialRow.id)))
        for row_id in ids:
            while True:  # again if the app replaced the key between our read and write
                async with self._db.work() as work:
                    old = await work.session.scalar(
                        select(CredentialRow.ciphertext).where(CredentialRow.id == row_id)
                    )
                    if old is None:
                        break
                    if self._cipher.is_current(old):
                        current += 1
                        break
                    result = await work.session.execute(
                        update(CredentialRow)
                        .where(CredentialRow.id == row_id, CredentialRow.ciphertext == old)
                        .values(ciphertext=self._cipher.rotate(old))
                    )
                    if result.rowcount == 1:
                        rotated += 1
                        break
        return rotated, current
