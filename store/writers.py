"""SQLite's one writer at a time, queued in this process, people first.

SQLite lets one transaction write at a time; the others wait in its busy handler, which
polls with sleeps of up to 100 ms, so a queue of writers becomes seconds of latency. Here
they queue in the event loop instead and are handed the lock in turn. Writes a person is
waiting on (a task started, a click, a key submitted) go before the runs' own progress
(events, leases, the outbox): with hundreds of runs writing, a start still waits for one
write at most, not for all of them; after a few people's writes in a row, a waiting run's
write goes next, so none waits for ever. PostgreSQL has no such limit and takes no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

URGENT_IN_A_ROW = 8  # then the oldest background write gets a turn: none is starved


class WriterQueue:
    def __init__(self) -> None:
        self._busy = False
        self._urgent_in_a_row = 0
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
        """Hand the turn to the next waiter, people's writes first (but never more than
        URGENT_IN_A_ROW of them while a run's write waits: a lease renewal starved for
        long enough would lose a live run); or free the lock."""
        order = (self._urgent, self._background)
        if self._urgent_in_a_row >= URGENT_IN_A_ROW:
            order = (self._background, self._urgent)
        for queue in order:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    self._urgent_in_a_row = (
                        self._urgent_in_a_row + 1 if queue is self._urgent else 0
                    )
                    return
        self._busy = False
        self._urgent_in_a_row = 0

    @property
    def waiting(self) -> int:
        return sum(not w.done() for q in (self._urgent, self._background) for w in q)
