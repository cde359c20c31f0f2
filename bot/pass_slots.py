"""At most a few delivery passes work at once, each in a slot; a pass that waits on Slack
(its channel's posting pace, a Retry-After it waits out) gives its slot back meanwhile.

The slots keep the passes' database work inside the connection pool. A wait uses no
connection: a pass that kept its slot while it waited a second before each post in its
channel would leave runs in other channels unposted once there are more channels busy than
slots, and every thread would go at a fraction of the rate Slack allows it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class PassSlots:
    def __init__(self, size: int) -> None:
        self._size = size
        self._free = asyncio.Semaphore(size)
        self._holders: set[asyncio.Task[object]] = set()

    @property
    def free(self) -> int:
        """Slots no pass holds now."""
        return self._size - len(self._holders)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """A slot for the current task's pass, for the block."""
        task = asyncio.current_task()
        assert task is not None
        await self._free.acquire()
        self._holders.add(task)
        try:
            yield
        finally:
            if task in self._holders:  # not when it was given back and the pass ended so
                self._holders.discard(task)
                self._free.release()

    @contextlib.asynccontextmanager
    async def given_back(self) -> AsyncIterator[None]:
        """Around a wait: the current task's slot, if it holds one, is free until the wait
        is over (then taken again, in turn). A wait that ends in an exception (the pass
        cancelled) takes no slot again: the pass is ending."""
        task = asyncio.current_task()
        if task not in self._holders:
            yield  # a pass outside the slots (one following a live reply)
            return
        self._holders.discard(task)
        self._free.release()
        yield
        await self._free.acquire()
        self._holders.add(task)  # type: ignore[arg-type]
