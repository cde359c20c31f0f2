"""Kept publishing claims, the claim keeper and the wake-ups around them: no event waits
for a poll, no claim outlives its reason, the keeper never waits on a pass, and stop()
leaves no claim behind."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.publisher import Publisher
from store import Store
from store import events as ev
from tests.bot.claims_env import claim_of, open_store, run_in_thread
from tests.bot.live_env import run_with_thread
from tests.db import add_event
from tests.fakes.slack_api import SlackApiEmulator


async def _claim_owner(store: Store, run_id: str) -> str | None:
    return (await claim_of(store, run_id)).claim_owner


async def _texts(store: Store, slack: SlackApiEmulator, run_id: str) -> list[str]:
    run = await store.runs.get(run_id)
    assert run is not None
    return [m.get("text", "") for m in slack.thread(run.channel_id, str(run.thread_ts))]


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _posted_and_idle(
    publisher: Publisher, store: Store, slack: SlackApiEmulator, run_ids: list[str]
) -> None:
    """Until each run's "m0" is posted and its claim kept; then each is made idle long
    enough for the keeper's next look to let go of it."""
    for run_id in run_ids:
        await _until(lambda run=run_id: _posted(store, slack, run, ["m0"]))

    async def all_kept() -> bool:
        return all(r in publisher._idle_since for r in run_ids)

    await _until(all_kept)
    now = asyncio.get_running_loop().time()
    for run_id in run_ids:
        publisher._idle_since[run_id] = now - 10


async def test_an_event_appended_while_the_keeper_lets_go_of_the_claim_is_posted(
    tmp_path: Path, secret_key: str
) -> None:
    """The keeper holds the run's lock while it releases an idle claim; an event appended
    meanwhile is posted when the release is over, not at the next poll."""
    store = await open_store(tmp_path, secret_key)
    try:
        async with SlackApiEmulator() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            run_id = await run_in_thread(store, client)
            releasing, go_on = asyncio.Event(), asyncio.Event()
            real_release = store.outbox.release

            async def gated(run: str, *, owner: str) -> None:
                if not releasing.is_set():  # the keeper's release of the idle claim
                    releasing.set()
                    await go_on.wait()
                await real_release(run, owner=owner)

            store.outbox.release = gated  # type: ignore[method-assign]
            publisher = Publisher(
                store,
                client,
                owner="replica-a",
                claim_s=0.8,  # the keeper looks every 0.2 s, lets go after 0.4 s idle
                poll_interval_s=3600,  # only wake-ups start passes
                keeps_claim=lambda _run: True,  # this replica drives the run
            )
            await publisher.start()
            try:
                await _until(lambda: _posted(store, slack, run_id, ["m0"]))
                await asyncio.wait_for(releasing.wait(), timeout=10)
                assert run_id in publisher._locks  # the keeper holds the run's lock
                await add_event(store, run_id, ev.INFO, {"text": "m1"})
                go_on.set()
                await _until(lambda: _posted(store, slack, run_id, ["m0", "m1"]))
            finally:
                go_on.set()
                await publisher.stop(grace_s=2)
    finally:
        await store.close()


async def _posted(store: Store, slack: SlackApiEmulator, run_id: str, texts: list[str]) -> bool:
    return await _texts(store, slack, run_id) == texts


async def test_a_kept_claim_is_let_go_of_once_the_run_is_no_longer_driven_here(
    tmp_path: Path, secret_key: str
) -> None:
    """The run left this replica (it waits for an approval, say, and may resume on
    another): its kept claim is let go of at the keeper's next look, not only once idle
    for half a claim, so the replica now driving it can post it."""
    store = await open_store(tmp_path, secret_key)
    try:
        async with SlackApiEmulator() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            run_id = await run_in_thread(store, client)
            driven = {run_id}
            looks_since_flip: list[int] = []  # the keeper's renewals after the run left
            released_at: list[int] = []  # how many of them had come when it was let go of
            real_renew_all, real_release = store.outbox.renew_all, store.outbox.release

            async def renew_all(run_ids: Collection[str], **kwargs: object) -> set[str]:
                if run_id not in driven:
                    looks_since_flip.append(1)
                return await real_renew_all(run_ids, **kwargs)  # type: ignore[arg-type]

            async def release(run: str, *, owner: str) -> None:
                released_at.append(len(looks_since_flip))
                await real_release(run, owner=owner)

            store.outbox.renew_all = renew_all  # type: ignore[method-assign]
            store.outbox.release = release  # type: ignore[method-assign]
            # claim_s as the server's default run lease: the keeper looks every 2 s and
            # lets go of a claim idle for 4 s.
            publisher = Publisher(
                store, client, owner="replica-a", claim_s=8, keeps_claim=driven.__contains__
            )
            await publisher.start()
            try:
                await _until(lambda: _posted(store, slack, run_id, ["m0"]))

                async def kept() -> bool:
                    return run_id in publisher._idle_since

                await _until(kept)
                # The run stops here (it waits for an approval, say) and resumes on replica B.
                driven.discard(run_id)

                async def let_go() -> bool:
                    return bool(released_at)

                await _until(let_go)
                # At the first look after it left (idle for under 2 s then, not 4).
                assert released_at == [1]
                assert await store.outbox.claim(run_id, owner="replica-b", lease_s=8)
            finally:
                await publisher.stop(grace_s=2)
    finally:
        await store.close()


async def test_stop_returns_only_once_every_kept_claim_is_released(
    tmp_path: Path, secret_key: str
) -> None:
    """A release the keeper starts while stop() is on its way is waited for: stop()
    returns with no claim left, before the store is closed under it."""
    store = await open_store(tmp_path, secret_key)
    in_flight = 0
    try:
        async with SlackApiEmulator() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            run_ids = [await run_in_thread(store, client) for _ in range(2)]
            publisher = Publisher(
                store, client, owner="replica-a", claim_s=2, keeps_claim=lambda _run: True
            )
            first_release = asyncio.Event()
            real_release = store.outbox.release

            async def slow_release(run: str, *, owner: str) -> None:
                nonlocal in_flight
                in_flight += 1
                try:
                    if not first_release.is_set():
                        first_release.set()
                        # Until stop() is past its loop and waits on this release.
                        while publisher._task is None or not publisher._task.done():
                            await asyncio.sleep(0.01)
                        await asyncio.sleep(0.2)
                    else:
                        await asyncio.sleep(0.5)
                    await real_release(run, owner=owner)
                finally:
                    in_flight -= 1

            store.outbox.release = slow_release  # type: ignore[method-assign]
            await publisher.start()
            await _posted_and_idle(publisher, store, slack, run_ids)
            await asyncio.wait_for(first_release.wait(), timeout=10)
            await publisher.stop(grace_s=5)
            owners = [await _claim_owner(store, r) for r in run_ids]
            assert owners == [None, None]
    finally:

        async def settled() -> bool:
            return in_flight == 0

        await _until(settled)
        await store.close()


async def test_a_run_whose_lock_is_held_does_not_send_the_loop_scanning_over_and_over(
    tmp_path: Path, secret_key: str
) -> None:
    """While a run's lock is held and the run has something to post, a pass that finds
    the lock taken leaves the run to the lock's holder instead of waking the loop again
    at once (a scan of the outbox per loop turn until the lock is free)."""
    store = await open_store(tmp_path, secret_key)
    try:
        async with SlackApiEmulator() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            busy = await run_in_thread(store, client)
            other = await run_in_thread(store, client)
            publisher = Publisher(store, client, owner="replica-a", poll_interval_s=3600)
            await publisher.drain()  # m0 of both posted
            scans = 0
            real_pending = store.outbox.pending

            async def counted(**kwargs: int) -> list[str]:
                nonlocal scans
                scans += 1
                return await real_pending(**kwargs)

            store.outbox.pending = counted  # type: ignore[method-assign]
            await publisher.start()
            try:
                # A pass of `busy` is on (as a follower delivering a paced backlog would be).
                async with publisher._run_lock(busy):
                    await add_event(store, busy, ev.INFO, {"text": "m1"})
                    before = scans
                    await add_event(store, other, ev.INFO, {"text": "m1"})  # wakes the loop
                    await _until(lambda: _posted(store, slack, other, ["m0", "m1"]))
                    await asyncio.sleep(0.5)  # the lock is held a while longer
                    during = scans - before
                publisher._handed_back(busy)  # as a pass over would
                await _until(lambda: _posted(store, slack, busy, ["m0", "m1"]))
                assert during <= 5, f"{during} scans while one run's lock was held"
            finally:
                await publisher.stop(grace_s=2)
    finally:
        await store.close()


async def test_the_keeper_renews_claims_while_a_pass_holds_an_idle_runs_lock(
    tmp_path: Path, secret_key: str
) -> None:
    """The keeper never waits for a run's lock: while a pass holds one, the other claims
    are still renewed, so a pass whose Slack call is held longer than a claim keeps it."""
    store = await open_store(tmp_path, secret_key)
    try:
        async with SlackApiEmulator() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            kept = [await run_in_thread(store, client) for _ in range(2)]
            posted_later = (await run_with_thread(store, client)).id
            first_released: list[str] = []
            releasing, go_on = asyncio.Event(), asyncio.Event()
            real_release = store.outbox.release

            async def gated(run: str, *, owner: str) -> None:
                if run in kept and not releasing.is_set():  # the keeper's first release
                    first_released.append(run)
                    releasing.set()
                    await go_on.wait()
                await real_release(run, owner=owner)

            store.outbox.release = gated  # type: ignore[method-assign]
            replica_a = Publisher(
                store,
                client,
                owner="replica-a",
                claim_s=0.8,  # the keeper renews every 0.2 s
                keeps_claim=lambda run: run in kept,
            )
            replica_b = Publisher(store, client, owner="replica-b", claim_s=0.8)
            await replica_a.start()
            try:
                await _posted_and_idle(replica_a, store, slack, kept)
                await asyncio.wait_for(releasing.wait(), timeout=10)
                other = next(r for r in kept if r not in first_released)
                # A pass starts on the other idle run while the keeper releases the first.
                async with replica_a._run_lock(other):
                    go_on.set()
                    slack.slow("chat.postMessage", 3.0)  # Slack holds A's next post 3 s
                    await add_event(store, posted_later, ev.INFO, {"text": "m0"})
                    await slack.wait_for(lambda s: s.in_flight.get("chat.postMessage"))
                    while slack.in_flight.get("chat.postMessage"):
                        await replica_b.publish_run(posted_later)  # B hears of it too
                        await asyncio.sleep(0.1)
                replica_a._handed_back(other)
            finally:
                go_on.set()
                await replica_a.stop(grace_s=2)
            assert await _texts(store, slack, posted_later) == ["m0"]
    finally:
        await store.close()
