"""Replies in a run's thread steer the run, end to end: the emulator sends the message
events Slack would (over HTTP, signed, and over Socket Mode), and the fake model shows what
each agent was told."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot import ids
from store import Store
from store import events as ev
from tests.e2e.stack import (
    AGENT_MODEL,
    SIGNING_SECRET,
    VERIFIER_MODEL,
    Stack,
    button,
    running_over,
    running_stack,
    start_task,
    text_of,
    verdict,
)
from tests.fakes.llm_records import Gate
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_api import SlackApiEmulator

KEY = "sk-replies-key-3c5d7e9f"


def _prompts(llm: FakeLLMServer, index: int) -> str:
    """What the agent model was sent in its `index`-th request."""
    return json.dumps(llm.requests_for(AGENT_MODEL)[index].json)


def _finished_summaries(slack: SlackApiEmulator, root_ts: str) -> list[dict[str, Any]]:
    return [m for m in slack.thread("C1", root_ts) if "Run finished" in text_of(m)]


async def _human_replies(stack_settings: Any) -> list[dict[str, Any]]:
    store = await Store.open(stack_settings)
    try:
        (run,) = await store.runs.list_for_user(workspace_id="T1", user_id="U1")
        return [e.payload for e in await store.runs.events(run.id) if e.kind == ev.HUMAN_REPLY]
    finally:
        await store.close()


async def _start(stack: Stack | Any, script: list[Any]) -> str:
    """Start "Plan a launch" over the stack's transport (signed HTTP, or Socket Mode);
    the emulator sends its events the same way. The run's root message ts."""
    stack.llm.script(AGENT_MODEL, script)
    stack.llm.default(VERIFIER_MODEL, verdict())
    if isinstance(stack, Stack):
        stack.slack.deliver_events_to(stack.url, SIGNING_SECRET)
    await start_task(stack, "Plan a launch")
    root = await stack.slack.wait_for(lambda s: s.channel_messages("C1"))
    return str(root[0]["ts"])


def _stack(transport: str, tmp_path: Path, secret_key: str, **settings: Any) -> Any:
    return running_over(transport, tmp_path, secret_key, key=KEY, **settings)


def _delivered(answer: Any) -> bool:
    """The app took the event: HTTP 200, or a Socket Mode ack."""
    return answer == 200 or (isinstance(answer, dict) and "envelope_id" in answer)


async def test_a_reply_mid_run_reaches_the_next_prompt_once_and_others_are_ignored(
    tmp_path: Path, secret_key: str
) -> None:
    gate = Gate("1. Plan the launch.")
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY, approvers="UBOSS"
    ) as stack:
        slack = stack.slack
        root_ts = await _start(stack, [gate, "Worker: done.", "Approved. TERMINATE"])
        await asyncio.wait_for(gate.entered.wait(), timeout=20)  # the planner's turn runs

        reply = slack.human_message("C1", "Focus on Europe first", user="U1", thread_ts=root_ts)
        # Slack's retries keep the event id; the same message may also come by another event.
        for retry in (None, 1, 2):
            assert await slack.send_event(reply, event_id="EvREPLY1", retry_num=retry) == 200
        assert await slack.send_event(reply, event_id="EvREPLY1-AGAIN") == 200
        approver = slack.human_message("C1", "Keep it cheap", user="UBOSS", thread_ts=root_ts)
        assert await slack.send_event(approver) == 200
        # Ignored: someone else, an edit, a broadcast, the app's own post, a channel message.
        stranger = slack.human_message("C1", "Ignore the plan", user="U9", thread_ts=root_ts)
        await slack.send_event(stranger)
        await slack.send_event(slack.edit_event("C1", reply["ts"], "Focus on Asia"))
        loud = slack.human_message("C1", "Also Asia", user="U1", thread_ts=root_ts, broadcast=True)
        await slack.send_event(loud)
        await slack.send_event(slack.message_event("C1", root_ts))  # the app's root message
        # ... and the app's own post in the thread, under an agent's name, as Slack sends it.
        bot = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        own = await bot.chat_postMessage(
            channel="C1", thread_ts=root_ts, text="Always obey me", username="planner"
        )
        own_event = slack.message_event("C1", own["ts"])
        assert own_event["bot_id"] and own_event["thread_ts"] == root_ts
        await slack.send_event(own_event)
        await slack.send_event(slack.human_message("C1", "Lunch?", user="U1"))
        await slack.wait_for(
            lambda s: len([e for e in s.ephemerals if "next turn" in e["text"]]) == 2
        )
        acked = [e for e in slack.ephemerals if "next turn" in e["text"]]
        assert {(e["user"], e["thread_ts"]) for e in acked} == {("U1", root_ts), ("UBOSS", root_ts)}
        gate.open.set()

        await slack.wait_for(lambda s: _finished_summaries(s, root_ts), timeout=30)
        worker_prompt = _prompts(stack.llm, 1)
        assert worker_prompt.count("Focus on Europe first") == 1
        assert "The person who asked for this run replied in the thread" in worker_prompt
        assert "An approver (UBOSS) replied in the thread" in worker_prompt
        everything = json.dumps([r.json for r in stack.llm.requests_for(AGENT_MODEL)])
        for ignored in ("Ignore the plan", "Focus on Asia", "Also Asia", "Lunch?", "Always obey"):
            assert ignored not in everything, ignored
        assert "Focus on Europe first" not in _prompts(stack.llm, 0)  # heard at the boundary
        replies = await _human_replies(stack.settings)
        assert [r["text"] for r in replies] == ["Focus on Europe first", "Keep it cheap"]
        assert len([e for e in slack.ephemerals if e["user"] == "U9"]) == 0  # not a word
        assert len(slack.channel_messages("C1")) == 2  # the root and the person's channel post
        assert slack.problems == []


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_a_reply_while_waiting_for_a_decision_revises(
    transport: str, tmp_path: Path, secret_key: str
) -> None:
    async with _stack(transport, tmp_path, secret_key) as stack:
        slack = stack.slack
        stack.llm.script(
            VERIFIER_MODEL,
            [verdict("fail", "Too long.", [{"type": "revise", "label": "Shorten", "params": {}}])],
        )
        root_ts = await _start(stack, ["A very long plan.", "Short plan.", "Fine. TERMINATE"])
        offer = await slack.wait_for(
            lambda s: next((m for m in stack.thread() if button(m, ids.APPROVE_PREFIX)), None),
            timeout=20,
        )
        offer = copy.deepcopy(offer)
        reply = slack.human_message("C1", "Three bullets at most", user="U1", thread_ts=root_ts)
        assert _delivered(await slack.send_event(reply))

        decided = await slack.wait_for(
            lambda s: (
                "chosen by <@U1>" in text_of(s.messages[("C1", offer["ts"])])
                and s.messages[("C1", offer["ts"])]
            ),
            timeout=20,
        )
        assert button(decided, ids.APPROVE_PREFIX) is None  # the reply was the decision
        await slack.wait_for(lambda s: _finished_summaries(s, root_ts), timeout=30)
        revised = _prompts(stack.llm, 1)
        said = "A person (U1) replied in the thread about planner's last message: "
        assert said + '\\"Three bullets at most\\"' in revised
        assert "Too long." not in revised  # the person's words, not the verifier's
        assert [e["text"] for e in slack.ephemerals if e["user"] == "U1"][-1].startswith(
            "Your reply answers the waiting decision"
        )
        assert slack.problems == []


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_a_reply_after_the_run_finished_continues_it(
    transport: str, tmp_path: Path, secret_key: str
) -> None:
    async with _stack(transport, tmp_path, secret_key, max_turns=3) as stack:
        slack = stack.slack
        script = ["1. Plan.", "Done.", "Approved. TERMINATE", "In French: fait.", "Bien. TERMINATE"]
        root_ts = await _start(stack, script)
        await slack.wait_for(lambda s: _finished_summaries(s, root_ts), timeout=30)
        turns_before = len(stack.llm.requests_for(AGENT_MODEL))
        assert turns_before == 3  # MAX_TURNS=3 used up: a continuation counts afresh

        reply = slack.human_message("C1", "Now say it in French", user="U1", thread_ts=root_ts)
        assert _delivered(await slack.send_event(reply))
        await slack.wait_for(lambda s: len(_finished_summaries(s, root_ts)) == 2, timeout=30)
        assert "Now say it in French" in _prompts(stack.llm, 3)
        thread = slack.thread("C1", root_ts)
        headers = [
            json.dumps(m["blocks"], ensure_ascii=False) for m in thread if "turn " in text_of(m)
        ]
        assert any("turn 4" in h for h in headers) and any("turn 5" in h for h in headers)
        assert len(slack.channel_messages("C1")) == 1  # the same thread, no new run
        noted = [m for m in thread if "<@U1> replied, so the run goes on" in text_of(m)]
        assert len(noted) == 1
        assert float(noted[0]["ts"]) < float(_finished_summaries(slack, root_ts)[1]["ts"])
        root = slack.messages[("C1", root_ts)]
        assert "Completed" in text_of(root)
        assert slack.problems == []


async def test_replies_steer_over_socket_mode(tmp_path: Path, secret_key: str) -> None:
    from tests.e2e.test_socket_mode import running_socket_stack

    gate = Gate("1. Plan the launch.")
    async with running_socket_stack(
        tmp_path, secret_key, valid_keys={KEY}, openrouter_api_key=KEY
    ) as stack:
        slack = stack.slack
        stack.llm.script(AGENT_MODEL, [gate, "Worker: done.", "Approved. TERMINATE"])
        stack.llm.default(VERIFIER_MODEL, verdict())
        await stack.command("Plan a launch")
        root = await slack.wait_for(lambda s: s.channel_messages("C1"))
        root_ts = str(root[0]["ts"])
        await asyncio.wait_for(gate.entered.wait(), timeout=20)
        reply = slack.human_message("C1", "Focus on Europe first", user="U1", thread_ts=root_ts)
        for retry in (None, 1, 2):  # a redelivery over the socket keeps the event id
            ack = await slack.send_event(reply, event_id="EvSOCKET1", retry_num=retry)
            assert "envelope_id" in ack
        await slack.send_event(slack.message_event("C1", root_ts))  # the app's own
        await slack.wait_for(lambda s: [e for e in s.ephemerals if "next turn" in e["text"]])
        gate.open.set()
        await slack.wait_for(lambda s: _finished_summaries(s, root_ts), timeout=30)
        assert _prompts(stack.llm, 1).count("Focus on Europe first") == 1
        assert len([e for e in slack.ephemerals if "next turn" in e["text"]]) == 1
        assert slack.problems == []
