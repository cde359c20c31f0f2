"""Both front ends on one person: a token tied to a Slack user (`create-token --user U1
--workspace T1`) sees and drives that person's Slack runs, and a run it starts is theirs in
Slack too (listed in the Home tab, nothing posted in a channel). Another Slack user's
token sees none of it."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from bot import ids
from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL, button, running_stack, text_of, verdict
from tests.e2e.test_home import _open_home
from tests.web.stack import KEY, TEAM_REPLIES, Client, make_token


async def test_a_tied_token_drives_a_slack_run_and_its_own_runs_show_in_slack(
    tmp_path: Path, secret_key: str
) -> None:
    async with (
        running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack,
        aiohttp.ClientSession() as session,
    ):
        base = f"http://127.0.0.1:{stack.settings.port}"
        u1 = Client(base, (await make_token(stack.settings, "U1", "T1"))[1], session)
        u2 = Client(base, (await make_token(stack.settings, "U2", "T1"))[1], session)
        stack.llm.script(AGENT_MODEL, TEAM_REPLIES)
        stack.llm.script(VERIFIER_MODEL, [verdict(), verdict(), verdict()])

        # Started in Slack; the key asked for there is given through the API.
        status, _, _ = await stack.command("Write a haiku about queues")
        assert status == 200
        await stack.slack.wait_for(
            lambda s: next((m for m in stack.thread() if button(m, ids.CREDENTIAL_OPEN)), None)
        )
        (listed,) = (await u1.call("GET", "/tasks")).body
        assert listed["source"] == "slack" and listed["requester_id"] == "U1"
        task_id = listed["task_id"]
        async with u1.follow(task_id) as socket:
            events = await u1.events_until(socket, "credential_request")
            given = await u1.call(
                "POST", "/credentials", {"user_id": "U1", "provider": "openrouter", "value": KEY}
            )
            assert given.status == 201 and given.body["resumed_tasks"] == [task_id]
            events += await u1.events_until(socket, "finished")
        assert [e["sender"] for e in events if e["type"] == "agent_message"] == [
            "planner",
            "worker",
            "reviewer",
        ]
        # Slack shows the same run going on: the key notice lost its button, the summary came.
        summary = await stack.slack.wait_for(
            lambda s: next((m for m in stack.thread() if "Completed" in text_of(m)), None)
        )
        assert summary is not None
        assert button(stack.thread()[0], ids.CREDENTIAL_OPEN) is None

        # Another Slack user's token: not theirs.
        assert (await u2.call("GET", f"/tasks/{task_id}")).status == 403
        assert (await u2.call("GET", "/tasks")).body == []

        # Started through the API: U1's run in Slack's Home tab, and no post anywhere.
        posts_before = len(stack.slack.calls_to("chat.postMessage"))
        stack.llm.script(AGENT_MODEL, TEAM_REPLIES)
        stack.llm.script(VERIFIER_MODEL, [verdict(), verdict(), verdict()])
        api_task = await u1.start("Count the queues")
        async with u1.follow(api_task) as socket:
            await u1.events_until(socket, "finished")
        await _open_home(stack)
        home = await stack.slack.wait_for(lambda s: s.home_views.get("U1"))
        shown = json.dumps(home)
        assert api_task in shown and "Count the queues" in shown
        assert "started from the web API" in shown
        assert len(stack.slack.calls_to("chat.postMessage")) == posts_before
        chat_calls = [c.params for c in stack.slack.calls if c.method.startswith("chat.")]
        assert api_task not in json.dumps(chat_calls)
