"""/autogen status, stop, credentials (and Delete), the Stop button, and a redelivered command."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot import ids
from bot.listeners.commands import autogen as autogen_command
from store import Store
from tests.e2e.stack import AGENT_MODEL, button, running_stack, text_of
from tests.e2e.test_slack_flow import KEY, _start_and_add_key
from tests.fakes.slack_api import SlackApiEmulator


async def test_status_stop_and_credentials(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        calls = 0

        async def slow_after_first(_request: dict) -> str:
            nonlocal calls
            calls += 1
            if calls > 1:
                await asyncio.sleep(60)  # still thinking when the user stops the run
            return "Still working on it."

        stack.llm.set_handler(AGENT_MODEL, slow_after_first)
        await _start_and_add_key(stack, "Summarise the quarter")
        await stack.slack.wait_for(lambda s: any("turn " in text_of(m) for m in stack.thread()))

        # Acked empty at once; the answer, read from the database, goes to response_url.
        status, body, _ = await stack.command("status")
        assert (status, body) == (200, "")
        (answer,) = await stack.slack.wait_for(lambda s: _responses(s, "Your runs"))
        assert answer["response_type"] == "ephemeral"
        assert "Summarise the quarter" in text_of(answer)

        # Someone else presses Stop on the root message: refused, nothing changes.
        root = stack.root()
        await stack.click(root, ids.STOP_RUN, user_id="U2")
        (refusal,) = await stack.slack.wait_for(
            lambda s: [e for e in s.ephemerals if e["user"] == "U2"]
        )
        assert refusal["thread_ts"] is None  # beside the root, where U2 clicked
        status, body, _ = await stack.command("stop", user_id="U2")
        await stack.slack.wait_for(lambda s: any(s.responses.values()))

        status, body, _ = await stack.command("stop")
        assert status == 200
        replies = await stack.slack.wait_for(
            lambda s: [r for rs in s.responses.values() for r in rs if "Stopping run" in str(r)]
        )
        assert replies
        await stack.slack.wait_for(lambda s: "Cancelled" in text_of(stack.root()), timeout=20)
        assert button(stack.root(), ids.STOP_RUN) is None
        assert not any(button(m, ids.APPROVE_PREFIX) for m in stack.thread())

        status, body, _ = await stack.command("credentials")
        assert (status, body) == (200, "")
        (listing,) = await stack.slack.wait_for(lambda s: _responses(s, "Your keys"))
        assert listing["response_type"] == "ephemeral"
        assert "openrouter" in text_of(listing) and KEY not in text_of(listing)
        message = {"blocks": listing["blocks"], "channel": "C1", "ts": "1700000000.000001"}
        await stack.click(message, ids.CREDENTIAL_DELETE, user_id="U1", is_ephemeral=True)
        after = await stack.slack.wait_for(
            lambda s: [r for rs in s.responses.values() for r in rs if "no stored keys" in str(r)]
        )
        assert after
        store = await Store.open(stack.settings)
        try:
            assert await store.credentials.list_for_user(workspace_id="T1", user_id="U1") == []
        finally:
            await store.close()
        assert stack.slack.problems == []


def _responses(slack: SlackApiEmulator, text: str) -> list[dict[str, Any]]:
    """Posts to any response_url whose fallback text is `text`."""
    return [r for rs in slack.responses.values() for r in rs if r.get("text") == text]


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
        assert status == 200
        (answer,) = await stack.slack.wait_for(
            lambda s: [r for rs in s.responses.values() for r in rs]
        )
        assert answer["response_type"] == "ephemeral"
        assert "direct messages" in answer["text"] and "channel" in answer["text"]
        assert "Invite me first" not in answer["text"]
        assert stack.slack.channel_messages(channel_id) == []
        assert stack.slack.problems == []


async def test_a_command_in_a_channel_without_the_app_says_invite_me(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        await stack.command("Draft a plan", channel_id="C0999", channel_name="random")
        (answer,) = await stack.slack.wait_for(
            lambda s: [r for rs in s.responses.values() for r in rs]
        )
        assert "Invite me first with `/invite @AutoGen`" in answer["text"]


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
    monkeypatch.setattr(autogen_command, "ROOT_POST_HOLD_S", 0.2)
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        stack.slack.slow("chat.postMessage", 4.0)
        status, _, elapsed = await stack.command("Draft a plan")
        assert status == 200 and elapsed < 3.0
        await stack.slack.wait_for(lambda s: s.deleted, timeout=15)
        (root,) = stack.slack.channel_messages("C1")
        (late_copy,) = stack.slack.deleted
        assert "Draft a plan" in text_of(root) and "Draft a plan" in text_of(late_copy)
        assert late_copy["ts"] != root["ts"]
        await stack.slack.wait_for(
            lambda s: any(button(m, ids.CREDENTIAL_OPEN) for m in stack.thread())
        )
        assert stack.slack.problems == []
