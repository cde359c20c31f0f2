"""Replies in a run's thread, end to end, at the edges: a mention that starts a run is not
also its reply, a reply with a file counts, a reply answering an offer without "revise" goes
back to the judged agent. The emulator sends the events Slack sends (signed, over HTTP)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bot import ids
from store import Store
from store import events as ev
from tests.e2e.stack import (
    AGENT_MODEL,
    SIGNING_SECRET,
    VERIFIER_MODEL,
    Stack,
    button,
    running_stack,
    text_of,
    verdict,
)
from tests.fakes.llm_records import Gate
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_signing import app_mention, event_callback, json_payload

KEY = "sk-review-replies-key-5a7c9e1f"


def _prompts(llm: FakeLLMServer) -> list[str]:
    return [json.dumps(r.json["messages"]) for r in llm.requests_for(AGENT_MODEL)]


def _finished(slack: Any, thread_ts: str) -> Any:
    return lambda s: [m for m in s.thread("C1", thread_ts) if "Run finished" in text_of(m)]


async def _events(stack: Stack, kind: str) -> list[dict[str, Any]]:
    store = await Store.open(stack.settings)
    try:
        (run,) = await store.runs.list_for_user(workspace_id="T1", user_id="U1")
        return [e.payload for e in await store.runs.events(run.id) if e.kind == kind]
    finally:
        await store.close()


async def _start(stack: Stack, script: list[Any]) -> str:
    stack.llm.script(AGENT_MODEL, script)
    stack.llm.default(VERIFIER_MODEL, verdict())
    stack.slack.deliver_events_to(stack.url, SIGNING_SECRET)
    status, body, _ = await stack.command("Plan a launch")
    assert (status, body) == (200, "")
    root = await stack.slack.wait_for(lambda s: s.channel_messages("C1"))
    return str(root[0]["ts"])


async def test_a_mention_in_a_thread_is_not_also_heard_as_a_reply_to_the_run_it_starts(
    tmp_path: Path, secret_key: str
) -> None:
    gate = Gate("1. Look at the queue.")
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY
    ) as stack:
        slack = stack.slack
        slack.deliver_events_to(stack.url, SIGNING_SECRET)
        stack.llm.script(AGENT_MODEL, [gate, "Drain it.", "Good. TERMINATE"])
        stack.llm.default(VERIFIER_MODEL, verdict())
        parent = slack.add_user_message("C1", "Our queue keeps growing", user="U2")
        text = "<@UBOT> what should we do?"
        message = slack.human_message("C1", text, user="U1", thread_ts=parent)
        mention = app_mention(
            text=text,
            ts=message["ts"],
            thread_ts=parent,
            client_msg_id=message["client_msg_id"],
        )
        # Slack sends the app_mention and the message event of the same message.
        status, _, _ = await stack.sender.post(
            stack.url, *json_payload(event_callback(mention)), SIGNING_SECRET
        )
        assert status == 200
        await asyncio.wait_for(gate.entered.wait(), timeout=20)  # the run works in `parent`
        assert await slack.send_event(message) == 200
        await asyncio.sleep(0.5)
        gate.open.set()
        await slack.wait_for(_finished(slack, parent), timeout=30)

        assert await _events(stack, ev.HUMAN_REPLY) == []
        assert [e for e in slack.ephemerals if "next turn" in e["text"]] == []
        assert all(p.count("what should we do?") == 1 for p in _prompts(stack.llm))


async def test_the_requesters_reply_with_a_file_attached_is_heard(
    tmp_path: Path, secret_key: str
) -> None:
    gate = Gate("1. Plan the launch.")
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY
    ) as stack:
        slack = stack.slack
        root_ts = await _start(stack, [gate, "Worker: done.", "Approved. TERMINATE"])
        await asyncio.wait_for(gate.entered.wait(), timeout=20)
        event = slack.human_message(
            "C1", "Use the numbers in this sheet", user="U1", thread_ts=root_ts
        )
        # What Slack sends when a person replies with a file attached to their text.
        event |= {
            "subtype": "file_share",
            "upload": False,
            "display_as_bot": False,
            "files": [{"id": "F0REVIEW1", "name": "budget.csv", "mimetype": "text/csv"}],
        }
        assert await slack.send_event(event) == 200
        await asyncio.sleep(0.5)
        gate.open.set()
        await slack.wait_for(_finished(slack, root_ts), timeout=30)
        assert [r["text"] for r in await _events(stack, ev.HUMAN_REPLY)] == [
            "Use the numbers in this sheet"
        ]
        assert "Use the numbers in this sheet" in _prompts(stack.llm)[1]


async def test_a_reply_answering_an_offer_without_revise_goes_back_to_the_judged_agent(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY
    ) as stack:
        slack = stack.slack
        stop_only = verdict("fail", "The plan has no budget.", [{"type": "stop", "label": "Stop"}])
        stack.llm.script(VERIFIER_MODEL, [stop_only])
        root_ts = await _start(
            stack, ["1. Launch.", "1. Budget. 2. Launch.", "Worker: done.", "Good. TERMINATE"]
        )
        await slack.wait_for(
            lambda s: any(button(m, ids.APPROVE_PREFIX) for m in s.thread("C1", root_ts)),
            timeout=20,
        )
        reply = slack.human_message("C1", "Add a budget step", user="U1", thread_ts=root_ts)
        assert await slack.send_event(reply) == 200
        await slack.wait_for(lambda s: len(stack.llm.requests_for(AGENT_MODEL)) >= 2, timeout=20)
        revised = stack.llm.requests_for(AGENT_MODEL)[1].json["messages"]
        assert "Add a budget step" in json.dumps(revised)
        assert revised[0]["content"].startswith("You are the planner"), revised[0]["content"]
