"""`@AutoGen <task>` in a channel, end to end over HTTP and over Socket Mode: the run's root
is a reply to the mention, in its thread; retries and duplicates start one run; mentions by
bots, and help, start none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.stack import (
    AGENT_MODEL,
    SIGNING_SECRET,
    VERIFIER_MODEL,
    running_stack,
    text_of,
    verdict,
)
from tests.e2e.test_slack_flow import KEY
from tests.e2e.test_socket_mode import running_socket_stack
from tests.fakes.slack_signing import app_mention, event_callback, json_payload

SCRIPT = ["1. Read the thread.", "Queues: three points.", "Good. TERMINATE"]


def _finished_in(slack: Any, thread_ts: str) -> Any:
    return lambda s: next(
        (m for m in s.thread("C1", thread_ts) if "Run finished" in text_of(m)), None
    )


async def test_a_mention_starts_one_run_in_its_thread(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY
    ) as stack:
        stack.llm.script(AGENT_MODEL, SCRIPT)
        stack.llm.default(VERIFIER_MODEL, verdict())
        text = "<@UBOT> summarise what we know about queues"
        mention_ts = stack.slack.add_user_message("C1", text, user="U1")
        callback = event_callback(app_mention(text=text, ts=mention_ts), event_id="Ev0MENTION1")
        for _ in range(3):  # Slack's retries and a duplicate delivery: one run
            status, body, _ = await stack.sender.post(
                stack.url, *json_payload(callback), SIGNING_SECRET
            )
            assert status == 200
        await stack.slack.wait_for(_finished_in(stack.slack, mention_ts), timeout=30)
        runs = await stack.stored_runs()
        assert len(runs) == 1 and runs[0].thread_ts == mention_ts
        assert runs[0].task == "summarise what we know about queues"
        thread = stack.slack.thread("C1", mention_ts)
        root = next(m for m in thread if "AutoGen run" in text_of(m))
        assert runs[0].root_ts == root["ts"] and "Completed" in text_of(root)  # kept up to date
        assert [m["text"] for m in stack.slack.channel_messages("C1")] == [text]  # no new thread
        assert len([m for m in thread if "turn " in text_of(m)]) == 3
        assert stack.slack.problems == []


async def test_mentions_that_are_not_tasks_start_nothing(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY
    ) as stack:
        by_bot = stack.slack.add_user_message("C1", "<@UBOT> deploy", user="UOTHERBOT")
        help_ts = stack.slack.add_user_message("C1", "<@UBOT> help", user="U1")
        for event in (
            app_mention(text="<@UBOT> deploy", ts=by_bot, user="UOTHERBOT", bot_id="B2"),
            app_mention(text="<@UBOT> help", ts=help_ts),
            app_mention(text="<@UBOT> --team nope do it", ts=help_ts),
        ):
            status, _, _ = await stack.sender.post(
                stack.url, *json_payload(event_callback(event)), SIGNING_SECRET
            )
            assert status == 200
        answers = await stack.slack.wait_for(lambda s: len(s.ephemerals) == 2 and s.ephemerals)
        # Answered beside the mention, where the person is looking (it has no thread).
        assert all(e["user"] == "U1" and not e.get("thread_ts") for e in answers)
        shown = json.dumps(answers)
        assert "Mention me with a task" in shown and "I don't know a team called `nope`" in shown
        assert await stack.stored_runs() == []


async def test_a_mention_over_socket_mode(tmp_path: Path, secret_key: str) -> None:
    async with running_socket_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY
    ) as stack:
        stack.llm.script(AGENT_MODEL, SCRIPT)
        stack.llm.default(VERIFIER_MODEL, verdict())
        text = "<@UBOT> summarise queues"
        mention_ts = stack.slack.add_user_message("C1", text, user="U1")
        callback = event_callback(app_mention(text=text, ts=mention_ts))
        ack = await stack.slack.socket_send("events_api", callback)
        assert ack == {"envelope_id": ack["envelope_id"]}
        await stack.slack.wait_for(_finished_in(stack.slack, mention_ts), timeout=30)
        root = next(m for m in stack.slack.thread("C1", mention_ts) if "AutoGen run" in text_of(m))
        assert "Completed" in text_of(root)


async def test_mentions_in_a_thread_broadcast_edited_and_by_webhooks(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY
    ) as stack:
        stack.llm.script(AGENT_MODEL, SCRIPT)
        stack.llm.default(VERIFIER_MODEL, verdict())
        parent = stack.slack.add_user_message("C1", "Our queue keeps growing", user="U2")
        text = "<@UBOT> what should we do?"
        reply = stack.slack.add_user_message("C1", text, user="U1", thread_ts=parent)
        webhook = {"type": "app_mention", "text": text, "ts": "1.1", "channel": "C1"}
        events = [
            # An edit of some mention, and a webhook's mention (no user): nothing, and a 200.
            app_mention(text=text, ts=reply, edited={"user": "U1", "ts": "9.9"}),
            {**webhook, "bot_id": "BHOOK", "subtype": "bot_message"},
            # Sent to the channel too ("Also send to channel"): a person asking, in a thread.
            app_mention(text=text, ts=reply, thread_ts=parent, subtype="thread_broadcast"),
        ]
        for event in events:
            status, _, _ = await stack.sender.post(
                stack.url, *json_payload(event_callback(event)), SIGNING_SECRET
            )
            assert status == 200
        await stack.slack.wait_for(_finished_in(stack.slack, parent), timeout=30)
        runs = await stack.stored_runs()
        assert len(runs) == 1 and runs[0].thread_ts == parent  # the thread it was asked in
        assert runs[0].task == "what should we do?"
