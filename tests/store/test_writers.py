"""SQLite's writers queue in the event loop, one at a time, people's writes first; a
waiter cancelled in the queue (or just as its turn came) never blocks the ones after it."""

from __future__ import annotations

import asyncio

from store.writers import WriterQueue


async def test_one_writer_at_a_time_and_urgent_writes_go_first() -> None:
    queue = WriterQueue()
    order: list[str] = []
    inside = 0

    async def write(name: str, *, urgent: bool) -> None:
        nonlocal inside
        async with queue.turn(urgent=urgent):
            inside += 1
            assert inside == 1
            order.append(name)
            await asyncio.sleep(0.01)
            inside -= 1

    first = asyncio.create_task(write("first", urgent=False))
    await asyncio.sleep(0)  # it holds the turn now
    background = [asyncio.create_task(write(f"run-{n}", urgent=False)) for n in range(3)]
    await asyncio.sleep(0)
    people = [asyncio.create_task(write(f"person-{n}", urgent=True)) for n in range(2)]
    await asyncio.gather(first, *background, *people)
    assert order == ["first", "person-0", "person-1", "run-0", "run-1", "run-2"]
    assert queue.waiting == 0


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    queue = WriterQueue()
    release = asyncio.Event()
    done: list[str] = []

    async def hold() -> None:
        async with queue.turn(urgent=False):
            await release.wait()

    async def write(name: str) -> None:
        async with queue.turn(urgent=False):
            done.append(name)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(write("cancelled"))
    after = asyncio.create_task(write("after"))
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    await asyncio.gather(holder, after, return_exceptions=True)
    assert done == ["after"]

    # Handed the turn, then cancelled before it ran: the turn goes on to the next.
    holder = asyncio.create_task(hold())
    release.clear()
    await asyncio.sleep(0)
    unlucky = asyncio.create_task(write("unlucky"))
    last = asyncio.create_task(write("last"))
    await asyncio.sleep(0)
    release.set()
    await asyncio.sleep(0)  # the holder leaves and hands the turn to `unlucky`...
    unlucky.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(holder, unlucky, last, return_exceptions=True)
    assert done[-1] == "last"
    async with asyncio.timeout(1):
        async with queue.turn(urgent=True):
            pass  # the lock is free again
