"""`python -m bot`: start what exists. The Slack listeners are not built yet, so this
migrates the database, checks the configuration, and says plainly what is missing."""

from __future__ import annotations

import asyncio
import logging
import sys

from store import Store
from store.settings import ConfigError, load_settings


async def _prepare() -> None:
    settings = load_settings()
    store = await Store.open(settings)
    await store.close()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_prepare())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        "autogen-slack: database ready. The Slack app itself is not built yet "
        "(issue 4); nothing is listening for Slack.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
