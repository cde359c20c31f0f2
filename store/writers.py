"""SQLite's one writer at a time, queued in this process, people first.

SQLite lets one transaction write at a time; the others wait in its busy handler, which
polls with sleeps of up to 100 ms, so a queue of writers becomes seconds of latency. Here
they queue in the event loop instead and are handed the lock in turn. Writes a person is
waiting on (a task started, a click, a key submitted) go before the runs' own progress
(events, leases, the outbox): with hundreds of runs writing, a start still waits for one
write at most, not for all of them. PostgreSQL has no such limit and takes no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class WriterQueue:
    def __init__(self) -> None:
        self._busy = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()

    @contextlib.asynccontextmanager
    async def turn(self, *, urgent: bool) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._busy:
            self._busy = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._background).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed the turn just as it was cancelled: pass it on
            else:
                waiter.cancel()  # `_release` skips it
            raise

    def _release(self) -> None:
        """Hand the turn to the next waiter, people's writes first; or free the lock."""
        for queue in (self._urgent, self._background):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._busy = False

    @property
    def waiting(self) -> int:
        return sum(not w.done() for q in (self._urgent, self._background) for w in q)
