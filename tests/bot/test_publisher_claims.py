"""Publishing claims as short as a run lease: renewed in the background while a pass waits
on Slack, and freed by the replica that takes up a dead replica's runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import update

from bot.publisher import Publisher
from runner.housekeeping import requeue_orphaned_runs
from store import events as ev
from store.models import OutboxRow, RunRow, utcnow
from store.records import RunStatus
from tests.bot.claims_env import claim_of, open_store, run_in_thread
from tests.db import add_event
from tests.fakes.slack_api import SlackApiEmulator

LEASE_S = 8


async def test_a_pass_waiting_on_slack_longer_than_its_claim_keeps_it(
    tmp_path: Path, secret_key: str
) -> None:
    """The claim lasts 0.4 s, Slack holds the first post 2 s: the background renewal keeps
    the claim, so another replica cannot take the run over and post it a second time."""
    store = await open_store(tmp_path, secret_key)
    try:
        async with SlackApiEmulator() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            run_id = await run_in_thread(store, client)
            await add_event(store, run_id, ev.INFO, {"text": "m1"})
            slack.slow("chat.postMessage", 2.0)
            replica_a = Publisher(store, client, owner="replica-a", claim_s=0.4)
            replica_b = Publisher(store, client, owner="replica-b", claim_s=0.4)
            await replica_a.start()
            await slack.wait_for(lambda s: s.in_flight.get("chat.postMessage"))
            tries = 0
            while slack.in_flight.get("chat.postMessage"):  # A's post is held by Slack
                await replica_b.publish_run(run_id)
                tries += 1
                await asyncio.sleep(0.1)
            await replica_a.stop()
            thread = slack.thread("C1", (await store.runs.get(run_id)).thread_ts)
            assert [m["text"] for m in thread] == ["m0", "m1"]
            assert tries >= 5, "replica B never tried while A's post was held"
            assert (await claim_of(store, run_id)).claim_owner is None  # released at the end
    finally:
        await store.close()


async def test_taking_up_a_dead_replicas_run_frees_its_publishing_claim(
    tmp_path: Path, secret_key: str
) -> None:
    """The run's lease lapsed and its replica's claim was last renewed over a third of a
    lease ago: the recovering replica frees it, so the run's messages are posted at once.
    A claim renewed within that third is left alone (its holder trusts it without asking)."""
    store = await open_store(tmp_path, secret_key)
    try:
        async with SlackApiEmulator() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            dead = await run_in_thread(store, client)
            fresh = await run_in_thread(store, client)
            for run_id in (dead, fresh):
                assert await store.runs.claim_next(owner="replica-dead", lease_s=LEASE_S)
                assert await store.outbox.claim(run_id, owner="replica-dead", lease_s=LEASE_S)
            now = utcnow()
            async with store.engine.begin() as connection:
                await connection.execute(
                    update(RunRow).values(lease_expires_at=now - timedelta(seconds=1))
                )
                await connection.execute(  # renewed half a lease ago
                    update(OutboxRow)
                    .where(OutboxRow.run_id == dead)
                    .values(claim_expires_at=now + timedelta(seconds=LEASE_S / 2))
                )
            await requeue_orphaned_runs(store, running_here=set(), lease_s=LEASE_S)
            assert (await store.runs.get(dead)).status == RunStatus.QUEUED
            assert (await claim_of(store, dead)).claim_owner is None
            assert (await claim_of(store, fresh)).claim_owner == "replica-dead"
            survivor = Publisher(store, client, owner="replica-b", claim_s=LEASE_S)
            await survivor.drain()
            posted = slack.thread("C1", (await store.runs.get(dead)).thread_ts)
            assert [m["text"] for m in posted][0] == "m0"
            assert slack.thread("C1", (await store.runs.get(fresh)).thread_ts) == []
    finally:
        await store.close()


async def test_a_run_between_passes_keeps_nothing_in_the_publisher(
    tmp_path: Path, secret_key: str
) -> None:
    """A run that is not over (waiting for a key, say) is shown and left: the publisher
    keeps no lock or claim time of it, so thousands of waiting runs cost it nothing."""
    store = await open_store(tmp_path, secret_key)
    try:
        async with SlackApiEmulator() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            publisher = Publisher(store, client, owner="replica-a")
            run_ids = [await run_in_thread(store, client) for _ in range(3)]
            await publisher.drain()
            await asyncio.gather(*(publisher.publish_run(r) for r in run_ids * 2))
            for run_id in run_ids:
                thread = slack.thread("C1", (await store.runs.get(run_id)).thread_ts)
                assert [m["text"] for m in thread] == ["m0"]
            assert (publisher._locks, publisher._lock_users, publisher._held_since) == ({}, {}, {})
    finally:
        await store.close()


async def test_a_run_driven_here_keeps_its_claim_between_passes_until_idle(
    tmp_path: Path, secret_key: str
) -> None:
    """While this replica drives a run, its messages are posted without claiming and
    releasing around each one; once no pass came for half a claim, the claim is let go."""
    store = await open_store(tmp_path, secret_key)
    try:
        async with SlackApiEmulator() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            run_id = await run_in_thread(store, client)
            claims: list[str] = []
            real_claim = store.outbox.claim

            async def counted(run: str, **kwargs: object) -> bool:
                claims.append(run)
                return await real_claim(run, **kwargs)  # type: ignore[arg-type]

            store.outbox.claim = counted  # type: ignore[method-assign]
            publisher = Publisher(
                store, client, owner="replica-a", claim_s=0.8, keeps_claim=lambda r: r == run_id
            )
            await publisher.publish_run(run_id)
            for n in (1, 2, 3):
                await add_event(store, run_id, ev.INFO, {"text": f"m{n}"})
                await publisher.publish_run(run_id)
            thread = slack.thread("C1", (await store.runs.get(run_id)).thread_ts)
            assert [m["text"] for m in thread] == ["m0", "m1", "m2", "m3"]
            assert claims == [run_id]  # one claim for the four passes
            assert (await claim_of(store, run_id)).claim_owner == "replica-a"

            await publisher.start()  # its claim keeper lets go of idle claims
            try:
                for _ in range(100):
                    if (await claim_of(store, run_id)).claim_owner is None:
                        break
                    await asyncio.sleep(0.05)
                assert (await claim_of(store, run_id)).claim_owner is None
                assert publisher._held_since == {}
            finally:
                await publisher.stop()
    finally:
        await store.close()


async def test_a_replica_stopping_lets_go_of_the_claims_it_kept(
    tmp_path: Path, secret_key: str
) -> None:
    """Another replica can post the run at once, not after the claim lapses."""
    store = await open_store(tmp_path, secret_key)
    try:
        async with SlackApiEmulator() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            run_id = await run_in_thread(store, client)
            replica_a = Publisher(store, client, owner="replica-a", keeps_claim=lambda _: True)
            await replica_a.start()
            await slack.wait_for(lambda s: len(s.calls_to("chat.postMessage")) == 2)  # root, m0
            assert (await claim_of(store, run_id)).claim_owner == "replica-a"
            await replica_a.stop()
            assert (await claim_of(store, run_id)).claim_owner is None
            await add_event(store, run_id, ev.INFO, {"text": "m1"})
            replica_b = Publisher(store, client, owner="replica-b")
            await replica_b.publish_run(run_id)
            thread = slack.thread("C1", (await store.runs.get(run_id)).thread_ts)
            assert [m["text"] for m in thread] == ["m0", "m1"]
    finally:
        await store.close()


async def test_events_of_a_run_being_posted_wait_for_its_pass_without_a_scan(
    tmp_path: Path, secret_key: str
) -> None:
    """Each appended event used to send the publisher looking for runs with something to
    post (a read); while the run's own pass is on, it now only marks the run for a look
    once the pass is over, and nothing is missed."""
    store = await open_store(tmp_path, secret_key)
    try:
        async with SlackApiEmulator() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            run_id = await run_in_thread(store, client)
            scans: list[int] = []
            real_pending = store.outbox.pending

            async def counted(**kwargs: int) -> list[str]:
                scans.append(1)
                return await real_pending(**kwargs)

            store.outbox.pending = counted  # type: ignore[method-assign]
            publisher = Publisher(store, client, owner="replica-a", poll_interval_s=3600)
            slack.slow("chat.postMessage", 1.0, times=1)
            await publisher.start()
            try:
                await slack.wait_for(lambda s: s.in_flight.get("chat.postMessage"))
                before = len(scans)
                for n in range(1, 6):
                    await add_event(store, run_id, ev.INFO, {"text": f"m{n}"})
                    await asyncio.sleep(0)
                assert len(scans) == before  # none while the pass is held
                await slack.wait_for(
                    lambda s: len(s.thread("C1", s.channel_messages("C1")[-1]["ts"])) == 6
                )
            finally:
                await publisher.stop()
            thread = slack.thread("C1", (await store.runs.get(run_id)).thread_ts)
            assert [m["text"] for m in thread] == [f"m{n}" for n in range(6)]
    finally:
        await store.close()
