"""API tokens: made once and shown once, kept only as a hash, acting for one person, and
revocable; the CLI an operator uses to make, list and revoke them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from runner.redact import redact
from store import Store
from store.models import ApiTokenRow, AuditRow
from store.tokens import TOKEN_SHAPE, TokenError
from tests.store.test_cli import _cli


async def test_a_token_acts_for_its_user_until_revoked(store: Store) -> None:
    token_id, token = await store.tokens.create(user_id="U1", workspace_id="T1", label="ci")
    assert TOKEN_SHAPE.fullmatch(token)
    holder = await store.tokens.holder(token)
    assert holder is not None and (holder.workspace_id, holder.user_id) == ("T1", "U1")
    assert holder.token_id == token_id

    assert await store.tokens.revoke(token_id)
    assert await store.tokens.holder(token) is None
    assert not await store.tokens.revoke(token_id)  # once
    (listed,) = await store.tokens.list_all()
    assert listed.revoked_at is not None and listed.last_used_at is not None
    assert listed.label == "ci"


async def test_only_the_hash_is_kept_and_the_making_is_audited(store: Store) -> None:
    token_id, token = await store.tokens.create(user_id="U1", workspace_id="T1")
    async with store.engine.connect() as connection:
        rows = (await connection.execute(select(ApiTokenRow))).all()
        audit = (await connection.execute(select(AuditRow.action, AuditRow.subject))).all()
        dumped = []
        for table in ("api_tokens", "audit_log"):
            result = await connection.execute(text(f"SELECT * FROM {table}"))
            dumped += [str(row) for row in result.all()]
        dump = "\n".join(dumped)
    assert [r.token_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in dump and token[4:] not in dump
    assert ("token_created", token_id) in audit


@pytest.mark.parametrize(
    "presented",
    [None, "", "agt_short", "Bearer agt_x", "agt_" + "A" * 43, "sk-" + "a" * 40],
)
async def test_a_missing_malformed_or_unknown_token_acts_for_nobody(
    store: Store, presented: str | None
) -> None:
    await store.tokens.create(user_id="U1", workspace_id="T1")
    assert await store.tokens.holder(presented) is None


@pytest.mark.parametrize("user", ["", "has space", "x" * 33, "semi;colon"])
async def test_a_token_for_an_odd_user_id_is_refused_with_the_reason(
    store: Store, user: str
) -> None:
    with pytest.raises(TokenError, match="user id"):
        await store.tokens.create(user_id=user)
    assert await store.tokens.list_all() == []


def test_a_token_is_scrubbed_like_any_key() -> None:
    token = "agt_" + "Z9" * 21 + "x"
    assert redact(f"Authorization header held {token} today") == (
        "Authorization header held [redacted] today"
    )


def test_the_cli_makes_lists_and_revokes_tokens_never_listing_one(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/tokens.db",
        "SERVER_SECRET_KEY": Fernet.generate_key().decode(),
    }
    made = _cli(
        tmp_path, "create-token", "--user", "U1", "--workspace", "T1", "--label", "me", **env
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert TOKEN_SHAPE.fullmatch(token), made.stdout
    token_id = made.stdout.split("token ", 1)[1].split(" ", 1)[0]

    listed = _cli(tmp_path, "list-tokens", **env)
    assert listed.returncode == 0 and token_id in listed.stdout and "active" in listed.stdout
    assert token not in listed.stdout

    assert _cli(tmp_path, "revoke-token", token_id, **env).returncode == 0
    again = _cli(tmp_path, "revoke-token", token_id, **env)
    assert again.returncode == 1 and "no working token" in again.stderr
    assert "revoked" in _cli(tmp_path, "list-tokens", **env).stdout

    odd = _cli(tmp_path, "create-token", "--user", "bad user", **env)
    assert odd.returncode == 2 and "user id" in odd.stderr
