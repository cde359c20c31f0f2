"""Store maintenance commands: `.venv/bin/python -m store generate-key | rotate-keys | migrate`.

`make generate-key` and `make rotate-keys` run the same with the project's venv."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from store import Store
from store.crypto import CredentialError, generate_key
from store.settings import ConfigError, load_settings


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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.command == "generate-key":
            print(generate_key())
        elif args.command == "rotate-keys":
            print(asyncio.run(_rotate()))
        else:
            print(asyncio.run(_migrate()))
    except (ConfigError, CredentialError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
