"""API tokens: how a program (or the local web page) acts for one person.

A token is made once (`python -m store create-token --user ID`), shown once, and kept only
as its SHA-256: a stolen database holds no usable token. It acts for one user of one
workspace; giving it a Slack user id and workspace ties it to that person's Slack runs and
keys. Revoked tokens stay listed (who had access, until when) but no longer authenticate.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from store.models import ApiTokenRow, utcnow
from store.work import Repository, new_id

TOKEN_PREFIX = "agt_"  # noqa: S105 - the prefix that marks a token, not a secret
TOKEN_SHAPE = re.compile(r"agt_[A-Za-z0-9_\-]{43}")
LAST_USED_STEP = timedelta(minutes=1)  # how precisely `last_used_at` is kept
LOCAL_WORKSPACE = "local"  # the workspace of people who never came from Slack
_USER_ID = re.compile(r"[A-Za-z0-9._\-]{1,32}")


class TokenError(ValueError):
    """A token that cannot be made as asked (its user id, say); the message says why."""


@dataclass(frozen=True)
class TokenHolder:
    """Whom a valid token acts for."""

    token_id: str
    workspace_id: str
    user_id: str
    label: str = ""


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never its value."""

    token_id: str
    workspace_id: str
    user_id: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRepository(Repository):
    async def create(
        self, *, user_id: str, workspace_id: str = LOCAL_WORKSPACE, label: str = ""
    ) -> tuple[str, str]:
        """A new token for `user_id`: (its id, the token). The token is not kept: show it
        once. The making is audited."""
        for value, what in ((user_id, "user id"), (workspace_id, "workspace id")):
            if not _USER_ID.fullmatch(value or ""):
                raise TokenError(f"the {what} must be 1-32 letters, digits, '.', '_' or '-'")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = new_id()
        async with self._db.work(urgent=True) as work:
            work.session.add(
                ApiTokenRow(
                    id=token_id,
                    token_hash=_digest(token),
                    workspace_id=workspace_id,
                    user_id=user_id,
                    label=label.strip()[:100],
                )
            )
            work.audit(
                workspace_id=workspace_id,
                actor_id=user_id,
                action="token_created",
                subject=token_id,
                detail={"label": label.strip()[:100]},
            )
        return token_id, token

    async def holder(self, token: str | None) -> TokenHolder | None:
        """Whom `token` acts for; None when it is missing, malformed, unknown or revoked.
        A read: `last_used_at` is written only when it is older than LAST_USED_STEP, so a
        busy client does not add a write to every request."""
        if not token or not TOKEN_SHAPE.fullmatch(token):
            return None
        async with self._db.reads() as session:
            row = await session.scalar(
                select(ApiTokenRow).where(ApiTokenRow.token_hash == _digest(token))
            )
            if row is None or row.revoked_at is not None:
                return None
            holder = TokenHolder(row.id, row.workspace_id, row.user_id, row.label)
            last_used = row.last_used_at
        now = utcnow()
        if last_used is None or last_used < now - LAST_USED_STEP:
            async with self._db.work(urgent=True) as work:
                await work.session.execute(
                    update(ApiTokenRow)
                    .where(ApiTokenRow.id == holder.token_id)
                    .values(last_used_at=now)
                )
        return holder

    async def revoke(self, token_id_or_token: str) -> bool:
        """Stop a token from working, named by its id or by the token itself (a leaked one
        is revoked as it was found); False when there is no such working token. Audited."""
        if TOKEN_SHAPE.fullmatch(token_id_or_token):
            which = ApiTokenRow.token_hash == _digest(token_id_or_token)
        else:
            which = ApiTokenRow.id == token_id_or_token
        async with self._db.work(urgent=True) as work:
            row = await work.session.scalar(
                update(ApiTokenRow)
                .where(which, ApiTokenRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
                .returning(ApiTokenRow)
            )
            if row is None:
                return False
            work.audit(
                workspace_id=row.workspace_id,
                actor_id=row.user_id,
                action="token_revoked",
                subject=row.id,
            )
            return True

    async def list_all(self) -> list[TokenInfo]:
        async with self._db.reads() as session:
            rows = await session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.created_at))
            return [
                TokenInfo(
                    row.id,
                    row.workspace_id,
                    row.user_id,
                    row.label,
                    row.created_at,
                    row.last_used_at,
                    row.revoked_at,
                )
                for row in rows
            ]
