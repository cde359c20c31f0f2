"""/autogen status, stop, credentials (and Delete), the Stop button, and a redelivered command."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot import ids
from bot.listeners.commands import start as start_command
from store import Store
from store.records import RunStatus
from tests.e2e.stack import (
    AGENT_MODEL,
    VERIFIER_MODEL,
    Stack,
    assert_refused_not_in_channel,
    button,
    running_stack,
    text_of,
    verdict,
)
from tests.e2e.test_slack_flow import KEY, _start_and_add_key


def _thinking_forever_after(stack: Stack, turns: int) -> asyncio.Event:
    """The agent answers `turns` times, then is still thinking when the test stops the run;
    the event is set once it is."""
    calls = 0
    thinking = asyncio.Event()

    async def handler(_request: dict) -> str:
        nonlocal calls
        calls += 1
        if calls > turns:
            thinking.set()
            await asyncio.sleep(60)
        return "Still working on it."

    stack.llm.set_handler(AGENT_MODEL, handler)
    return thinking


async def _healthy_with(stack: Stack, *, active_runs: int) -> bool:
    """`GET /healthz` answers 200, ok, with this many runs working in this replica."""
    status, body = await stack.health()
    return status == 200 and body["ok"] is True and body["active_runs"] == active_runs


def _health_is(stack: Stack, *, active_runs: int) -> Callable[[Any], Awaitable[bool]]:
    return lambda _slack: _healthy_with(stack, active_runs=active_runs)


async def test_status_stop_and_credentials(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        thinking = _thinking_forever_after(stack, turns=1)
        await _start_and_add_key(stack, "Summarise the quarter")
        await stack.slack.wait_for(lambda s: any("turn " in text_of(m) for m in stack.thread()))
        await asyncio.wait_for(thinking.wait(), timeout=10)
        root = copy.deepcopy(stack.root())  # the emulator updates its copy in place
        run_id = button(root, ids.STOP_RUN)["value"]
        (running,) = await stack.stored_runs()
        assert running.id == run_id and running.status == RunStatus.RUNNING
        assert await _healthy_with(stack, active_runs=1)

        # Acked empty at once; the answer, read from the database, goes to response_url.
        status, body, _ = await stack.command("status")
        assert (status, body) == (200, "")
        answer = await stack.reply()
        assert answer["text"] == "Your runs" and answer["response_type"] == "ephemeral"
        assert "Summarise the quarter" in text_of(answer) and run_id in text_of(answer)

        # Someone else presses Stop on the root message, then types `/autogen stop <id>`
        # and `/autogen stop`: refused each time, each answer where they asked.
        refused = f"Only the person who started run `{run_id}` or an approver can stop it."
        await stack.click(root, ids.STOP_RUN, user_id="U2")
        (refusal,) = await stack.slack.wait_for(
            lambda s: [e for e in s.ephemerals if e["user"] == "U2"]
        )
        assert refusal["text"] == refused
        assert refusal["thread_ts"] is None  # beside the root, where U2 clicked
        status, body, _ = await stack.command(f"stop {run_id}", user_id="U2")
        assert (status, body) == (200, "")
        answer = await stack.reply()
        assert (answer["text"], answer["response_type"]) == (refused, "ephemeral")
        await stack.command("stop", user_id="U2")
        assert (await stack.reply())["text"] == "You have no active run to stop."
        (unchanged,) = await stack.stored_runs()
        assert unchanged.status == RunStatus.RUNNING and unchanged.cancelled_by is None
        assert unchanged.outcome is None and unchanged.finished_at is None
        assert button(stack.root(), ids.STOP_RUN) is not None
        assert "Cancelled" not in text_of(stack.root())

        # The requester stops it by id.
        status, body, _ = await stack.command(f"stop {run_id}")
        assert (status, body) == (200, "")
        assert (await stack.reply())["text"] == f"Stopping run `{run_id}`."
        await stack.slack.wait_for(lambda s: "Cancelled" in text_of(stack.root()), timeout=20)
        assert button(stack.root(), ids.STOP_RUN) is None
        assert not any(button(m, ids.APPROVE_PREFIX) for m in stack.thread())
        (stopped,) = await stack.stored_runs()
        assert stopped.status == RunStatus.CANCELLED and stopped.cancelled_by == "U1"
        await stack.slack.wait_for(_health_is(stack, active_runs=0))

        status, body, _ = await stack.command("credentials")
        assert (status, body) == (200, "")
        listing = await stack.reply()
        assert listing["text"] == "Your keys" and listing["response_type"] == "ephemeral"
        assert "openrouter" in text_of(listing) and KEY not in text_of(listing)
        message = {"blocks": listing["blocks"], "channel": "C1", "ts": "1700000000.000001"}
        await stack.click(message, ids.CREDENTIAL_DELETE, user_id="U1", is_ephemeral=True)
        after = await stack.reply()
        assert "no stored keys" in str(after)
        store = await Store.open(stack.settings)
        try:
            assert await store.credentials.list_for_user(workspace_id="T1", user_id="U1") == []
        finally:
            await store.close()
        assert stack.slack.problems == []


async def test_the_stop_button_on_the_root_stops_the_run(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        thinking = _thinking_forever_after(stack, turns=0)
        await _start_and_add_key(stack, "Plan the offsite")
        await asyncio.wait_for(thinking.wait(), timeout=10)
        root = copy.deepcopy(stack.root())
        run_id = button(root, ids.STOP_RUN)["value"]
        (running,) = await stack.stored_runs()
        assert running.id == run_id and running.status == RunStatus.RUNNING

        status, body, _ = await stack.click(root, ids.STOP_RUN, user_id="U1")
        assert (status, body) == (200, "")
        final = await stack.slack.wait_for(
            lambda s: "Cancelled" in text_of(stack.root()) and stack.root(), timeout=20
        )
        assert final["ts"] == root["ts"] and run_id in text_of(final)
        assert button(final, ids.STOP_RUN) is None
        summary = await stack.slack.wait_for(
            lambda s: next((m for m in stack.thread() if "Run finished" in text_of(m)), None)
        )
        # Who stopped it ("U1" is shorter than a real Slack id, so it may show as text).
        assert "Cancelled by" in text_of(summary) and "U1" in text_of(summary)
        (stopped,) = await stack.stored_runs()
        assert stopped.status == RunStatus.CANCELLED and stopped.cancelled_by == "U1"
        await stack.slack.wait_for(_health_is(stack, active_runs=0))
        # A stop that worked says nothing privately: the root shows it.
        assert stack.slack.ephemerals == []
        assert stack.slack.problems == []


@pytest.mark.parametrize(
    ("channel_id", "channel_name"),
    [("D0123", "directmessage"), ("G0123", "mpdm-alice--bob-1"), ("C0123", "mpdm-alice--bob-1")],
    ids=["dm", "group_dm", "mpim_by_name"],
)
async def test_a_command_in_a_direct_message_says_where_runs_happen(
    tmp_path: Path, secret_key: str, channel_id: str, channel_name: str
) -> None:
    """Nobody can invite the app into a DM, so "invite me first" would be impossible."""
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        status, body, _ = await stack.command(
            "Draft a plan", channel_id=channel_id, channel_name=channel_name
        )
        assert (status, body) == (200, "")
        answer = await stack.reply()
        assert answer["response_type"] == "ephemeral"
        assert "direct messages" in answer["text"] and "channel" in answer["text"]
        assert "Invite me first" not in answer["text"]
        assert stack.slack.channel_messages(channel_id) == []
        assert await stack.stored_runs() == []
        assert stack.slack.problems == []


async def test_a_command_in_a_channel_without_the_app_says_invite_me(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        status, body, _ = await stack.command(
            "Draft a plan", channel_id="C0999", channel_name="random"
        )
        assert (status, body) == (200, "")
        answer = await stack.reply()
        assert "Invite me first with `/invite @AutoGen`" in answer["text"]
        assert answer["response_type"] == "ephemeral"
        await assert_refused_not_in_channel(stack, "C0999")


async def test_a_redelivered_command_starts_one_run(tmp_path: Path, secret_key: str) -> None:
    from tests.e2e.stack import SIGNING_SECRET
    from tests.fakes.slack_signing import slash_command

    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        body, content_type = slash_command(
            text="Draft a plan",
            trigger_id="1111.2222.abc",
            response_url=stack.slack.new_response_url(channel="C1"),
        )
        for retry in (None, 1):
            status, _, _ = await stack.sender.post(
                stack.url, body, content_type, SIGNING_SECRET, retry_num=retry
            )
            assert status == 200
        await stack.slack.wait_for(
            lambda s: any(button(m, ids.CREDENTIAL_OPEN) for m in stack.thread())
        )
        assert len(stack.slack.channel_messages("C1")) == 1
        assert stack.slack.deleted == []  # no second root was posted (and taken back)
        (run,) = await stack.stored_runs()
        assert run.thread_ts == stack.root()["ts"]
        assert stack.slack.problems == []


async def test_cancel_while_waiting_for_a_key_closes_the_button(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        await stack.command("Something that needs a key")
        request_message = await stack.slack.wait_for(
            lambda s: next((m for m in stack.thread() if button(m, ids.CREDENTIAL_OPEN)), None)
        )
        request_message = dict(request_message)
        status, _, _ = await stack.command("stop")
        assert status == 200
        await stack.slack.wait_for(
            lambda s: "closed" in text_of(s.messages[("C1", request_message["ts"])]), timeout=20
        )
        assert (
            button(stack.slack.messages[("C1", request_message["ts"])], ids.CREDENTIAL_OPEN) is None
        )
        # A click on the stale button is refused politely.
        await stack.click(request_message, ids.CREDENTIAL_OPEN, user_id="U1")
        refusal = await stack.slack.wait_for(
            lambda s: [e for e in s.ephemerals if e["user"] == "U1"]
        )
        assert "closed" in refusal[-1]["text"] and stack.slack.views_opened == []


async def test_a_root_post_slower_than_the_hold_leaves_one_root(
    tmp_path: Path, secret_key: str, monkeypatch
) -> None:
    """Slack keeps /autogen's root post waiting past the hold: the publisher posts the run's
    root itself so the run is not unseen, and the late copy is deleted."""
    monkeypatch.setattr(start_command, "ROOT_POST_HOLD_S", 0.2)
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        stack.slack.slow("chat.postMessage", 4.0)
        status, body, _ = await stack.command("Draft a plan")
        assert (status, body) == (200, "")
        await stack.slack.wait_for(lambda s: s.deleted, timeout=15)
        (root,) = stack.slack.channel_messages("C1")
        (late_copy,) = stack.slack.deleted
        assert "Draft a plan" in text_of(root) and "Draft a plan" in text_of(late_copy)
        assert late_copy["ts"] != root["ts"]
        await stack.slack.wait_for(
            lambda s: any(button(m, ids.CREDENTIAL_OPEN) for m in stack.thread())
        )
        assert stack.slack.problems == []


async def test_a_task_that_mentions_payload_starts_its_run(tmp_path: Path, secret_key: str) -> None:
    """Bolt 1.30 reads a form body containing the word "payload" as an empty interaction
    (it answered 404, Slack showed an error); the guard's parse keeps it a command."""
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        status, _, _ = await stack.command("Explain this webhook payload", channel_name="payload")
        assert status == 200
        await stack.slack.wait_for(lambda s: s.channel_messages("C1"))
        (run,) = await stack.stored_runs()
        assert run.task == "Explain this webhook payload"
        assert "webhook payload" in text_of(stack.root())


async def test_named_teams_are_listed_and_picked_and_an_unknown_one_is_explained(
    tmp_path: Path, secret_key: str
) -> None:
    import json

    from runner.team_config import DEFAULT_TEAM_PATH

    teams = tmp_path / "teams"
    teams.mkdir()
    research = json.loads(DEFAULT_TEAM_PATH.read_text(encoding="utf-8"))
    research["description"] = "Finds sources & cites them."
    planner = research["config"]["participants"][0]["config"]
    planner["system_message"] = "You are the research lead. Name three sources."
    (teams / "research.json").write_text(json.dumps(research))
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, teams_dir=str(teams), openrouter_api_key=KEY
    ) as stack:
        status, body, _ = await stack.command("teams")
        assert status == 200
        listing = json.dumps(await stack.reply())
        assert "`default`" in listing and "`research`" in listing
        assert "Finds sources &amp; cites them." in listing

        await stack.command("--team marketing write a slogan")
        unknown = json.dumps(await stack.reply())
        assert "I don't know a team called `marketing`" in unknown and "`research`" in unknown
        assert stack.slack.channel_messages("C1") == []  # nothing started

        stack.llm.script(AGENT_MODEL, ["1. Docs 2. Paper 3. Blog", "Done.", "Good. TERMINATE"])
        status, body, _ = await stack.command("--team research find sources on queues")
        assert (status, body) == (200, "")
        await stack.slack.wait_for(
            lambda s: any("Run finished" in text_of(m) for m in stack.thread()), timeout=30
        )
        assert "team `research`" in text_of(stack.root())
        first_prompt = json.dumps(stack.llm.requests_for(AGENT_MODEL)[0].json)
        assert "You are the research lead." in first_prompt
        assert "find sources on queues" in first_prompt and "--team" not in first_prompt
        runs = await stack.stored_runs()
        assert [run.team_name for run in runs] == ["research"]


async def test_an_endpoint_that_needs_no_key_asks_nobody_for_one(
    tmp_path: Path, secret_key: str
) -> None:
    from runner.llm import KEYLESS_STAND_IN

    async with running_stack(
        tmp_path, secret_key, valid_keys={KEYLESS_STAND_IN}, llm_key_required=False
    ) as stack:
        stack.llm.script(AGENT_MODEL, ["1. Plan.", "Done.", "Approved. TERMINATE"])
        stack.llm.default(VERIFIER_MODEL, verdict())
        status, body, _ = await stack.command("Plan a launch")
        assert (status, body) == (200, "")
        await stack.slack.wait_for(
            lambda s: any("Run finished" in text_of(m) for m in stack.thread()), timeout=30
        )
        assert not any(button(m, ids.CREDENTIAL_OPEN) for m in stack.thread())  # nobody asked
        assert len(stack.llm.requests_for(AGENT_MODEL)) == 3
        assert stack.slack.problems == []
