"""A run stays close to its thread: before each turn it waits while its thread has more
than a few events still to show.

A team can write far faster than Slack shows messages (a channel takes about one post a
second; a fast model answers in less). Unpaced, such a run races ahead of its thread:
what people read is minutes old, a reply meant to steer the run lands turns later than
its writer saw, Stop comes after tokens were spent on messages nobody has read, and each
message waits behind the whole backlog. Paced, the run takes its next turn as its thread
catches up, so the thread shows the run as it is. The wait is bounded: if nothing is
shown for `max_wait_s` (Slack down, no publisher anywhere), the run goes on and its
messages queue as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from autogen_core import CancellationToken

from store import Store
from store.outbox import SHOWN
from store.records import NO_CHANNEL, Run

log = logging.getLogger(__name__)

MAX_UNSHOWN = 4  # events: about two turns (a message and its verdict each)
# The thread may be shown by another replica, whose deliveries wake nobody here: looked at
# this often too (each look is a read, for every run waiting).
RECHECK_S = 5.0


class ThreadPace:
    def __init__(self, store: Store, *, max_wait_s: float = 30.0) -> None:
        self._store = store
        self._max_wait_s = max_wait_s
        self._shown: dict[str, asyncio.Event] = {}  # runs waiting now, no others
        store.subscribe(self._on_store_change)

    def _on_store_change(self, topic: str, run_id: str) -> None:
        if topic == SHOWN and run_id in self._shown:
            self._shown[run_id].set()

    async def wait(self, run: Run, token: CancellationToken) -> None:
        """Return once the run's thread has at most MAX_UNSHOWN events to show, the turn
        is cancelled, or `max_wait_s` passed without the thread catching up."""
        if run.channel_id == NO_CHANNEL:
            return  # shown by no thread: nothing to keep up with
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait_s
        shown = self._shown.setdefault(run.id, asyncio.Event())
        try:
            while not token.is_cancelled():
                shown.clear()
                if await self._store.outbox.unshown(run.id) <= MAX_UNSHOWN:
                    return
                left = deadline - loop.time()
                if left <= 0:
                    log.info("its thread is behind; the run goes on", extra={"run_id": run.id})
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(shown.wait(), timeout=min(left, RECHECK_S))
        finally:
            self._shown.pop(run.id, None)
