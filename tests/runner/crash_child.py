"""A runner process for the recovery tests, there to be killed (SIGKILL) at a known point.

    python -m tests.runner.crash_child <db_url> <secret_key> <team_json_path> <mode>

Both modes open the store and a RunManager with a short lease (RUN_LEASE_S=2) and a short
poll interval, then serve until killed.

``start``: starts one run (workspace T1, channel C1, requester UREQ) and prints
``RUN <run id>``. Its verifier passes everything but stalls on its ``STALL_AT``-th call and
prints ``STALLED <n>`` first: the executor saves an agent message (with the team state)
before asking the verifier, so at that line the run is ``running`` with that many turns
saved and one message still unjudged, and stays so until the process is killed.

``serve``: only serves (recovers orphaned runs, claims queued ones); its verifier passes
everything at once.

In both modes each recovery pass (the one at start-up, then one per housekeeping pass)
prints ``RECOVERY <n> <wall-clock time the pass started>`` once it is done, so a test can
wait for evidence that passes ran instead of sleeping.

Every line on stdout is flushed; logs go to stderr.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import time
from typing import Any

from autogen_core.models import ChatCompletionClient, CreateResult
from autogen_ext.models.replay import ReplayChatCompletionClient

from runner.manager import RunManager
from store import Store
from store.settings import load_settings
from tests.runner.helpers import ScriptedVerifier, verdict

LEASE_S = 2
POLL_INTERVAL_S = 0.1
STALL_AT = 2
STALL_S = 120.0
TASK = "Write a haiku about durable queues."
WORKSPACE, CHANNEL, REQUESTER = "T1", "C1", "UREQ"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class StallingClient(ReplayChatCompletionClient):
    """A verifier model client that announces itself and then never answers in time."""

    def __init__(self, call: int) -> None:
        super().__init__([verdict()])
        self._call = call

    async def create(self, *args: Any, **kwargs: Any) -> CreateResult:
        say(f"STALLED {self._call}")
        await asyncio.sleep(STALL_S)
        return await super().create(*args, **kwargs)


class StallingVerifier(ScriptedVerifier):
    """Passes every message, but the `stall_at`-th verification stalls."""

    def __init__(self, stall_at: int) -> None:
        super().__init__([verdict()] * 50)
        self.stall_at = stall_at
        self.calls = 0

    def __call__(self, api_key: str) -> ChatCompletionClient:
        self.calls += 1
        if self.calls == self.stall_at:
            self.keys_seen.append(api_key)
            return StallingClient(self.calls)
        return super().__call__(api_key)


def _announce_recovery_passes(runs: RunManager) -> None:
    """Wrap `runs.recover` (start-up and every housekeeping pass call it) to print a line
    after each pass: ``RECOVERY <n> <time.time() when it started>``."""
    recover = runs.recover
    passes = itertools.count(1)

    async def announced() -> None:
        started = time.time()
        await recover()
        say(f"RECOVERY {next(passes)} {started:.6f}")

    runs.recover = announced  # type: ignore[method-assign]


async def main(db_url: str, secret_key: str, team_path: str, mode: str) -> None:
    if mode not in ("start", "serve"):
        raise SystemExit(f"unknown mode {mode!r}; use start or serve")
    settings = load_settings(
        database_url=db_url,
        server_secret_key=secret_key,
        team_config=team_path,
        run_lease_s=LEASE_S,
    )
    store = await Store.open(settings)
    factory = StallingVerifier(STALL_AT) if mode == "start" else ScriptedVerifier([verdict()] * 50)
    runs = RunManager(
        store,
        settings,
        verifier_client_factory=factory,
        instance_id=f"crash-child-{mode}-{os.getpid()}",
        poll_interval_s=POLL_INTERVAL_S,
    )
    _announce_recovery_passes(runs)
    await runs.start()
    if mode == "start":
        started = await runs.start_run(
            workspace_id=WORKSPACE, channel_id=CHANNEL, requester_id=REQUESTER, task=TASK
        )
        say(f"RUN {started.run.id}")
    say("SERVING")
    await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    asyncio.run(main(*sys.argv[1:5]))
