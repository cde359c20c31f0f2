"""`python -m bot` (what `make run` starts)."""

from __future__ import annotations

import asyncio
import sys

from bot.logs import configure_logging
from bot.server import serve
from runner.team import TeamConfigError
from store.crypto import CredentialError
from store.settings import ConfigError, load_settings


def main() -> int:
    try:
        settings = load_settings()
        configure_logging(settings)
        asyncio.run(serve(settings))
    except (ConfigError, CredentialError, TeamConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
