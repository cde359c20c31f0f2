"""Wake-ups for WebSocket followers: a run has new events.

The store tells this process after each commit of its own; a run driven by another replica
writes elsewhere, so followers also look again every `poll_s` (the event log is the one
record, read from a sequence number, so a late look loses nothing). Closing wakes every
follower for good, so a server that stops lets its WebSockets end at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator

from store import Store
from store.work import EVENT


class RunFeed:
    def __init__(self, store: Store, *, poll_s: float = 1.0) -> None:
        self.poll_s = poll_s
        self.closing = asyncio.Event()
        self._watchers: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        store.subscribe(self._on_store_change)

    def _on_store_change(self, topic: str, run_id: str) -> None:
        if topic == EVENT:
            for changed in self._watchers.get(run_id, ()):
                changed.set()

    @contextlib.contextmanager
    def watch(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set when the run has new events; watch before reading the log, so an
        event committed between the read and the wait still wakes the follower."""
        changed = asyncio.Event()
        self._watchers[run_id].add(changed)
        try:
            yield changed
        finally:
            watchers = self._watchers[run_id]
            watchers.discard(changed)
            if not watchers:
                del self._watchers[run_id]

    async def wait(self, changed: asyncio.Event) -> None:
        """Until the run changes here, the poll interval passes, or the feed closes."""
        if self.closing.is_set():
            return
        closing = asyncio.ensure_future(self.closing.wait())
        waiting = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait(
                {closing, waiting}, timeout=self.poll_s, return_when="FIRST_COMPLETED"
            )
        finally:
            closing.cancel()
            waiting.cancel()
        changed.clear()

    def close(self) -> None:
        self.closing.set()

    @property
    def followed(self) -> int:
        return len(self._watchers)
