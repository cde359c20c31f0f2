"""What the live-reply tests share: a store, the emulator and a client of it, runs whose
thread is already in Slack, drafts, and no pacing when a test says so."""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from runner.drafts import Draft, Drafts
from store import Store
from store import events as ev
from store.events import NewEvent
from store.records import Run
from tests.fakes.slack_api import SlackApiEmulator


async def run_with_thread(store: Store, client: AsyncWebClient, channel: str = "C1") -> Run:
    """U1's run in `channel` whose thread (its root message) is already in Slack."""
    root = await client.chat_postMessage(channel=channel, text="root")
    run, _ = await store.runs.create(
        workspace_id="T1",
        channel_id=channel,
        requester_id="U1",
        task="t",
        thread_ts=root["ts"],
        events=[NewEvent(ev.RUN_STARTED, {"task": "t", "requester_id": "U1", "queued_ahead": 0})],
    )
    return run


@dataclass
class Env:
    store: Store
    slack: SlackApiEmulator
    client: AsyncWebClient

    async def new_run(self, channel: str = "C1") -> Run:
        """A run whose thread (its root message in `channel`) is already in Slack."""
        return await run_with_thread(self.store, self.client, channel)

    def thread(self, run: Run) -> list[dict]:
        return self.slack.thread(run.channel_id, str(run.thread_ts))

    def texts(self, run: Run) -> list[str]:
        return [m.get("text", "") for m in self.thread(run)]


def write(drafts: Drafts, run: Run, chunk: str, **kwargs: object) -> Draft:
    drafts.add(run.id, source="worker", chunk=chunk, turn=1, **kwargs)  # type: ignore[arg-type]
    written = drafts.get(run.id)
    assert written is not None
    return written


def streams_of(slack: SlackApiEmulator, run: Run) -> list[dict]:
    return [s for s in slack.streams() if s.get("thread_ts") == run.thread_ts]
