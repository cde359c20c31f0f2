"""The publisher against the Slack emulator: restart catch-up, bounded retries, no repeats."""

from __future__ import annotations

from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.publisher import Publisher
from runner import events as ev
from store import Store
from store.settings import load_settings
from tests.fakes.slack_api import SlackApiEmulator


async def _store(tmp_path: Path, secret_key: str) -> Store:
    return await Store.open(
        load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/pub.db", server_secret_key=secret_key
        )
    )


async def _run_with_thread(store: Store, slack: SlackApiEmulator, client: AsyncWebClient) -> str:
    root = await client.chat_postMessage(channel="C1", text="root")
    run, _ = await store.runs.create(
        workspace_id="T1",
        channel_id="C1",
        requester_id="U1",
        task="t",
        thread_ts=root["ts"],
        events=[(ev.RUN_STARTED, {"task": "t", "requester_id": "U1", "queued_ahead": 0})],
    )
    return run.id


async def test_unposted_events_are_posted_after_a_restart_once(
    tmp_path: Path, secret_key: str
) -> None:
    store = await _store(tmp_path, secret_key)
    async with SlackApiEmulator() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        run_id = await _run_with_thread(store, slack, client)
        for index in range(3):
            await store.runs.append_event(run_id, ev.INFO, {"text": f"step {index}"})
        first = Publisher(store, client)
        await first.drain()
        await store.runs.append_event(run_id, ev.INFO, {"text": "after the crash"})
        # A new publisher (a restarted process) posts only what was not posted.
        second = Publisher(store, client)
        await second.drain()
        await second.drain()
        run = await store.runs.get(run_id)
        texts = [m["text"] for m in slack.thread("C1", run.thread_ts)]
        assert texts == ["step 0", "step 1", "step 2", "after the crash"]
        assert all(e.slack_ts for e in await store.runs.events(run_id))
        assert slack.problems == []
    await store.close()


async def test_server_errors_are_retried_with_backoff(tmp_path: Path, secret_key: str) -> None:
    store = await _store(tmp_path, secret_key)
    async with SlackApiEmulator() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        run_id = await _run_with_thread(store, slack, client)
        await store.runs.append_event(run_id, ev.INFO, {"text": "survives 500s"})
        slack.fail("chat.postMessage", status=500, times=2)
        await Publisher(store, client, base_delay_s=0.01).drain()
        run = await store.runs.get(run_id)
        assert [m["text"] for m in slack.thread("C1", run.thread_ts)] == ["survives 500s"]
        assert [c.status for c in slack.calls_to("chat.postMessage")][-3:] == [500, 500, 200]
    await store.close()


async def test_retries_are_bounded_and_nothing_is_lost(tmp_path: Path, secret_key: str) -> None:
    store = await _store(tmp_path, secret_key)
    async with SlackApiEmulator() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        run_id = await _run_with_thread(store, slack, client)
        await store.runs.append_event(run_id, ev.INFO, {"text": "first"})
        await store.runs.append_event(run_id, ev.INFO, {"text": "second"})
        slack.fail("chat.postMessage", status=503, times=3)
        publisher = Publisher(store, client, max_attempts=3, base_delay_s=0.01)
        await publisher.drain()
        assert [e.kind for e in await store.runs.unposted_events(run_id)] == [ev.INFO, ev.INFO]
        await publisher.drain()
        run = await store.runs.get(run_id)
        assert [m["text"] for m in slack.thread("C1", run.thread_ts)] == ["first", "second"]
    await store.close()


async def test_a_refused_event_is_skipped_not_blocking(tmp_path: Path, secret_key: str) -> None:
    store = await _store(tmp_path, secret_key)
    async with SlackApiEmulator() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        run_id = await _run_with_thread(store, slack, client)
        await store.runs.append_event(run_id, ev.INFO, {"text": "refused"})
        await store.runs.append_event(run_id, ev.INFO, {"text": "next"})
        slack.fail("chat.postMessage", status=200, times=1, error="channel_not_found")
        await Publisher(store, client).drain()
        assert await store.runs.unposted_events(run_id) == []
        run = await store.runs.get(run_id)
        assert [m["text"] for m in slack.thread("C1", run.thread_ts)] == ["next"]
    await store.close()
