"""The App Home tab, end to end over HTTP: published with the person's runs, keys and
teams when opened; a key deleted or added from it, and the tab shown again."""

from __future__ import annotations

import json
from pathlib import Path

from bot import ids
from store import Store
from store.crypto import Owner
from tests.e2e.stack import SIGNING_SECRET, Stack, running_stack
from tests.e2e.test_slack_flow import KEY
from tests.fakes.slack_signing import block_actions, event_callback, json_payload

NEW_KEY = "tvly-home-added-key-7a1c"


async def _open_home(stack: Stack, user: str = "U1") -> None:
    event = {"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"}
    status, _, _ = await stack.sender.post(
        stack.url, *json_payload(event_callback(event)), SIGNING_SECRET
    )
    assert status == 200


async def _click_home(stack: Stack, action_id: str, value: str, user: str = "U1") -> None:
    home = stack.slack.home_views[user]
    body, content_type = block_actions(action_id=action_id, value=value, view=home, user_id=user)
    status, _, _ = await stack.sender.post(stack.url, body, content_type, SIGNING_SECRET)
    assert status == 200


async def test_home_shows_runs_and_keys_and_manages_keys(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        store = await Store.open(stack.settings)
        try:
            await store.credentials.put(
                Owner("T1", "U1", "github"), "ghp_home_key_0001", actor_id="U1"
            )
            run, _ = await store.runs.create(
                workspace_id="T1",
                channel_id="C1",
                requester_id="U1",
                task="Summarise <the> quarter",
                thread_ts="1700000000.000100",
            )
        finally:
            await store.close()
        await _open_home(stack)
        home = await stack.slack.wait_for(lambda s: s.home_views.get("U1"))
        shown = json.dumps(home)
        assert "Summarise &lt;the&gt; quarter" in shown and run.id in shown
        # Its status, and a link to its thread (auth.test's workspace URL, Slack's form).
        assert "queued" in shown.lower()
        assert "https://autogen-test.slack.com/archives/C1/p1700000000000100" in shown
        assert "*github*" in shown and "ghp_home_key_0001" not in shown
        assert "`default`" in shown

        version = stack.slack.home_views["U1"]
        await _click_home(stack, ids.CREDENTIAL_DELETE, "github")
        home = await stack.slack.wait_for(
            lambda s: s.home_views["U1"] is not version and s.home_views["U1"]
        )
        assert "*github*" not in json.dumps(home) and "No stored keys" in json.dumps(home)

        await _click_home(stack, ids.CREDENTIAL_ADD, "add")
        modal = await stack.slack.wait_for(lambda s: s.views_opened and s.views_opened[-1])
        assert modal["callback_id"] == ids.CREDENTIAL_ADD_MODAL
        status, answer, _ = await stack.submit(
            modal, {ids.CREDENTIAL_INPUT_BLOCK: {ids.CREDENTIAL_INPUT: NEW_KEY}}, "U1"
        )
        assert status == 200 and "Choose a provider" in answer  # nothing chosen: refused inline
        chosen = {
            ids.CREDENTIAL_PROVIDER_BLOCK: {
                ids.CREDENTIAL_PROVIDER_INPUT: {
                    "type": "static_select",
                    "selected_option": {
                        "value": "tavily",
                        "text": {"type": "plain_text", "text": "t"},
                    },
                }
            },
            ids.CREDENTIAL_INPUT_BLOCK: {ids.CREDENTIAL_INPUT: NEW_KEY},
        }
        version = stack.slack.home_views["U1"]
        status, answer, _ = await stack.submit(modal, chosen, "U1")
        assert status == 200 and "errors" not in answer
        home = await stack.slack.wait_for(
            lambda s: s.home_views["U1"] is not version and s.home_views["U1"]
        )
        assert "*tavily*" in json.dumps(home) and NEW_KEY not in json.dumps(home)
        store = await Store.open(stack.settings)
        try:
            held = await store.credentials.reveal(Owner("T1", "U1", "tavily"), actor_id="test")
        finally:
            await store.close()
        assert held == NEW_KEY
        assert stack.slack.problems == []


async def test_home_over_socket_mode(tmp_path: Path, secret_key: str) -> None:
    from tests.e2e.test_socket_mode import running_socket_stack

    async with running_socket_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        event = {"type": "app_home_opened", "user": "U7", "channel": "D7", "tab": "home"}
        ack = await stack.slack.socket_send("events_api", event_callback(event))
        assert ack == {"envelope_id": ack["envelope_id"]}
        home = await stack.slack.wait_for(lambda s: s.home_views.get("U7"))
        assert "No runs yet" in json.dumps(home) and "Add a key" in json.dumps(home)
