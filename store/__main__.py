"""Store maintenance commands: `.venv/bin/python -m store generate-key | rotate-keys | migrate
| create-token | revoke-token | list-tokens`.

`make generate-key` and `make rotate-keys` run the same with the project's venv."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from store import Store
from store.crypto import CredentialError, generate_key
from store.settings import ConfigError, load_settings
from store.tokens import LOCAL_WORKSPACE, TOKEN_SHAPE, TokenError


async def _rotate() -> str:
    store = await Store.open(load_settings())
    try:
        rotated, current = await store.credentials.rotate_all()
    finally:
        await store.close()
    return (
        f"rotate-keys: re-encrypted {rotated} credential(s) under the newest key; "
        f"{current} already used it. Older keys may now be removed from SERVER_SECRET_KEY."
    )


async def _create_token(user: str, workspace: str, label: str) -> str:
    store = await Store.open(load_settings())
    try:
        token_id, token = await store.tokens.create(
            user_id=user, workspace_id=workspace, label=label
        )
    finally:
        await store.close()
    return (
        f"create-token: token {token_id} acts for {user} in {workspace}. It is shown only "
        f"now; keep it secret and send it as 'Authorization: Bearer <token>':\n{token}"
    )


async def _revoke_token(token_id: str) -> tuple[str, bool]:
    store = await Store.open(load_settings())
    try:
        revoked = await store.tokens.revoke(token_id)
    finally:
        await store.close()
    named = "given" if TOKEN_SHAPE.fullmatch(token_id) else token_id  # never echo a token
    if revoked:
        return f"revoke-token: the token {named} no longer works.", True
    return f"revoke-token: no working token {named} (unknown, or revoked before).", False


async def _list_tokens() -> str:
    store = await Store.open(load_settings())
    try:
        tokens = await store.tokens.list_all()
    finally:
        await store.close()
    if not tokens:
        return "list-tokens: no tokens."
    lines = []
    for t in tokens:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        used = f"last used {t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never used"
        lines.append(f"{t.token_id}  {t.workspace_id}/{t.user_id}  {state}, {used}  {t.label}")
    return "\n".join(lines)


async def _migrate() -> str:
    store = await Store.open(load_settings())
    await store.close()
    return "migrate: the database schema is at the newest revision."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m store",
        description="Maintenance of autogen-slack's database and credential encryption. "
        "Settings come from the environment and .env, as for the app.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "generate-key",
        help="print a new Fernet key for SERVER_SECRET_KEY (nothing is stored)",
        description="Print a new Fernet key. Put it first in SERVER_SECRET_KEY.",
    )
    commands.add_parser(
        "rotate-keys",
        help="re-encrypt every stored credential under the first SERVER_SECRET_KEY key",
        description="Re-encrypt every stored credential under the newest key (the first in "
        "SERVER_SECRET_KEY); afterwards the older keys may be removed.",
    )
    commands.add_parser(
        "migrate",
        help="bring the database schema to the newest revision (the app also does this "
        "at start-up)",
        description="Apply the Alembic migrations up to the newest revision.",
    )
    create = commands.add_parser(
        "create-token",
        help="make an API token acting for one person (printed once, stored hashed)",
        description="Make an API token for --user (a Slack user id ties it to that person's "
        "Slack runs and keys, with --workspace their Slack team id). The token is printed "
        "once and only its SHA-256 is stored.",
    )
    create.add_argument("--user", required=True, help="the user id the token acts for")
    create.add_argument(
        "--workspace", default=LOCAL_WORKSPACE, help="the Slack team id (default: local)"
    )
    create.add_argument("--label", default="", help="a note for list-tokens (who, what for)")
    revoke = commands.add_parser(
        "revoke-token",
        help="make an API token stop working",
        description="Revoke a token by its id (as create-token and list-tokens show it).",
    )
    revoke.add_argument("token_id", help="the token's id, or the token itself")
    commands.add_parser(
        "list-tokens",
        help="list API tokens (ids, whom they act for, state; never the tokens)",
        description="List every API token by id, never by value.",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.command == "generate-key":
            print(generate_key())
        elif args.command == "rotate-keys":
            print(asyncio.run(_rotate()))
        elif args.command == "create-token":
            print(asyncio.run(_create_token(args.user, args.workspace, args.label)))
        elif args.command == "revoke-token":
            message, revoked = asyncio.run(_revoke_token(args.token_id))
            print(message, file=sys.stdout if revoked else sys.stderr)
            return 0 if revoked else 1
        elif args.command == "list-tokens":
            print(asyncio.run(_list_tokens()))
        else:
            print(asyncio.run(_migrate()))
    except (ConfigError, CredentialError, TokenError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
