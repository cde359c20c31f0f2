"""Delivery passes' slots: given back for a wait, taken again after it, never counted twice."""

from __future__ import annotations

import asyncio
import contextlib

from bot.pass_slots import PassSlots


async def _free_slots(slots: PassSlots, most: int) -> int:
    """How many passes can take a slot right now (each holds it until all are counted)."""
    entered = 0
    release = asyncio.Event()

    async def take() -> None:
        nonlocal entered
        async with slots.held():
            entered += 1
            await release.wait()

    tasks = [asyncio.create_task(take()) for _ in range(most)]
    for _ in range(20):
        await asyncio.sleep(0)
    count = entered
    release.set()
    await asyncio.gather(*tasks)
    return count


async def test_a_waiting_pass_lets_another_work_and_then_works_again() -> None:
    slots = PassSlots(1)
    order: list[str] = []
    waiting = asyncio.Event()
    other_done = asyncio.Event()

    async def waiter() -> None:
        async with slots.held():
            async with slots.given_back():
                waiting.set()
                await other_done.wait()
            order.append("waiter works again")

    async def other() -> None:
        await waiting.wait()
        async with slots.held():  # only free because the waiter gave it back
            order.append("other works")
        other_done.set()

    await asyncio.wait_for(asyncio.gather(waiter(), other()), timeout=5)
    assert order == ["other works", "waiter works again"]
    assert await _free_slots(slots, 3) == 1


async def test_a_pass_cancelled_in_its_wait_frees_its_slot_once() -> None:
    slots = PassSlots(2)
    in_wait = asyncio.Event()

    async def waiter() -> None:
        async with slots.held(), slots.given_back():
            in_wait.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(waiter())
    await in_wait.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await _free_slots(slots, 4) == 2


async def test_a_wait_outside_any_slot_takes_none() -> None:
    slots = PassSlots(1)
    async with slots.given_back():
        pass
    assert await _free_slots(slots, 3) == 1
