"""Store maintenance commands: `python -m store rotate-keys | generate-key | migrate`."""

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
    parser = argparse.ArgumentParser(prog="python -m store")
    parser.add_argument("command", choices=["rotate-keys", "generate-key", "migrate"])
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
