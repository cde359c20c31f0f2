"""A pass that waits on Slack (its channel's posting pace, a short Retry-After) gives its
slot back for the wait: runs in other channels post meanwhile, however many wait."""

from __future__ import annotations

from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.publisher import PARALLEL_RUNS, Publisher
from store import Store
from store import events as ev
from store.settings import load_settings
from tests.bot.live_env import run_with_thread
from tests.db import add_event
from tests.fakes.slack_api import SlackApiEmulator

CHANNELS = [f"C{n}" for n in range(1, PARALLEL_RUNS + 3)]  # two more than the slots


async def test_runs_waiting_out_a_retry_after_leave_the_other_channels_free_to_post(
    tmp_path: Path, secret_key: str
) -> None:
    """Every slot's first post draws a 429 with `Retry-After: 20` (short enough to be waited
    out in the pass): the two runs left over still post at once, not 20 s later."""
    store = await Store.open(
        load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/slots.db", server_secret_key=secret_key
        )
    )
    try:
        async with SlackApiEmulator(member_channels=set(CHANNELS)) as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            for channel in CHANNELS:
                run = await run_with_thread(store, client, channel)
                await add_event(store, run.id, ev.INFO, {"text": f"news in {channel}"})
            slack.fail("chat.postMessage", status=429, retry_after=20, times=PARALLEL_RUNS)
            publisher = Publisher(store, client)
            await publisher.start()
            try:
                await slack.wait_for(
                    lambda s: (
                        len(
                            [
                                c
                                for c in s.calls_to("chat.postMessage")
                                if c.ok and "news" in c.params["text"]
                            ]
                        )
                        == 2
                    ),
                    timeout=10,
                )
                limited = [c for c in slack.calls_to("chat.postMessage") if not c.ok]
                assert len(limited) == PARALLEL_RUNS  # still waiting: none has posted yet
            finally:
                await publisher.stop(grace_s=0.5)
    finally:
        await store.close()
