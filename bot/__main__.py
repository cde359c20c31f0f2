"""`python -m bot` (what `make run` starts); `python -m bot --help` says how it is set up."""

from __future__ import annotations

import argparse
import asyncio
import sys

from store.settings import ConfigError, load_settings

DESCRIPTION = """\
Start autogen-slack: the Slack app, the runner and the publisher, in one process.

Configuration comes from the environment and from .env in the current folder (the
environment wins); every variable is documented in .env.example. With no Slack setting
the app starts in local mode: the web playground and the API on 127.0.0.1:PORT, and one
printed link that signs your browser in. With SLACK_APP_TOKEN set it connects over Socket
Mode; with only SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET it serves Slack over HTTP on PORT
at /slack/events. The API (/docs) and /healthz are on PORT in every mode. SIGTERM or
Ctrl-C stops it gracefully: running turns finish, pending messages are posted.

First time: `make run`, and open the link it prints. For Slack: cp .env.example .env,
fill in the Slack tokens (see the README), then `make run` again."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    try:
        settings = load_settings()
        settings.require_slack()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The app itself (AutoGen, Bolt) loads only now: help and a missing setting answer at once.
    from bot.logs import configure_logging
    from bot.server import serve
    from runner.team_config import TeamConfigError
    from store.crypto import CredentialError

    try:
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
