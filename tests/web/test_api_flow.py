"""A program drives a run through the web API, end to end over real HTTP and WebSockets:
start without a key, see the key asked for on the socket, give it, watch the team work
with its verdicts, see it finish; the key is in no event, answer, log line or database
byte. A client that reconnects with the last number it saw gets every event once."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest

from store import Store
from store import events as ev
from tests.db import add_event
from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL, verdict
from tests.web.stack import KEY, TEAM_REPLIES, running_web


async def test_start_give_the_key_watch_it_work_and_finish(
    tmp_path: Path, secret_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_web(tmp_path, secret_key) as stack:
        stack.script_default_team()
        alice = await stack.client("alice")
        task_id = await alice.start()
        async with alice.follow(task_id) as socket:
            first = await alice.events_until(socket, "credential_request")
            assert [e["type"] for e in first] == ["started", "credential_request"]
            request = first[-1]
            assert request["provider"] == "openrouter" and request["request_id"]
            assert "key" in request["description"].lower()
            assert stack.llm.requests_for(AGENT_MODEL) == []  # nobody called the model

            given = await alice.call(
                "POST",
                "/credentials",
                {"user_id": "alice", "provider": "openrouter", "value": KEY},
            )
            assert given.status == 201, given
            assert given.body == {
                "provider": "openrouter",
                "stored": True,
                "resumed_tasks": [task_id],
            }

            rest = await alice.events_until(socket, "finished")
            assert socket.closed or (await socket.receive()).type == aiohttp.WSMsgType.CLOSE
            assert socket.close_code == 1000

        events = first + rest
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        kinds = [e["type"] for e in events]
        assert kinds[:3] == ["started", "credential_request", "credential_received"]
        messages = [e for e in events if e["type"] == "agent_message"]
        assert [m["sender"] for m in messages] == ["planner", "worker", "reviewer"]
        assert [m["content"] for m in messages] == TEAM_REPLIES
        assert all(m["recipient"] == "team" for m in messages)
        verdicts = [e for e in events if e["type"] == "verifier_result"]
        assert [v["verdict"] for v in verdicts] == ["pass"] * 3
        assert [v["agent_seq"] for v in verdicts] == [m["seq"] for m in messages]
        finished = events[-1]
        assert finished["type"] == "finished" and finished["status"] == "completed"

        # The same run read back over REST: status, totals and the same events.
        read = await alice.call("GET", f"/tasks/{task_id}")
        assert read.status == 200
        assert read.body["status"] == "completed" and read.body["turns"] == 3
        assert read.body["source"] == "api" and read.body["requester_id"] == "alice"
        assert read.body["events"] == events and read.body["last_seq"] == events[-1]["seq"]
        later = await alice.call("GET", f"/tasks/{task_id}?after={events[-2]['seq']}")
        assert later.body["events"] == [finished]
        listed = await alice.call("GET", "/credentials/alice")
        assert [c["provider"] for c in listed.body] == ["openrouter"]
        assert set(listed.body[0]) == {"provider", "created_at", "updated_at", "last_used_at"}

        # The key reached the model, and nothing else.
        assert stack.llm.received(KEY)
        assert KEY not in "".join(alice.texts)
        assert KEY not in caplog.text
        assert KEY.encode() not in stack.database_bytes()


async def test_a_client_that_reconnects_with_the_last_number_gets_every_event_once(
    tmp_path: Path, secret_key: str
) -> None:
    """It drops the socket mid-run (after three events, and again after the pause for a
    decision), reconnecting each time with the last number it saw."""
    fix = [{"type": "revise", "label": "Fix it", "params": {}}]
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        stack.llm.script(AGENT_MODEL, ["1. Plan.", "Draft one", "Draft two", "Fine. TERMINATE"])
        stack.llm.script(
            VERIFIER_MODEL, [verdict(), verdict("fail", "Too short.", fix), verdict(), verdict()]
        )
        alice = await stack.client("alice")
        task_id = await alice.start()
        seen: list[dict] = []
        async with alice.follow(task_id) as socket:
            seen += await alice.events_until(socket, count=3)
        async with alice.follow(task_id, after=seen[-1]["seq"]) as socket:
            seen += await alice.events_until(socket, "actions_offered")
        offered = seen[-1]
        assert [a["label"] for a in offered["actions"]][0] == "Fix it"
        decided = await alice.call(
            "POST", f"/tasks/{task_id}/actions/{offered['actions'][0]['id']}", {"note": None}
        )
        assert decided.status == 200, decided
        async with alice.follow(task_id, after=seen[-1]["seq"]) as socket:
            seen += await alice.events_until(socket, "finished")
        whole = (await alice.call("GET", f"/tasks/{task_id}")).body["events"]
        assert seen == whole
        assert [e["seq"] for e in seen] == list(range(1, len(whole) + 1))
        assert any(e["type"] == "action_result" and e["action"] == "revise" for e in seen)
        # Reconnecting after the end gets nothing more and a clean close.
        async with alice.follow(task_id, after=whole[-1]["seq"]) as socket:
            assert (await socket.receive()).type == aiohttp.WSMsgType.CLOSE
            assert socket.close_code == 1000


async def test_events_another_replica_writes_reach_the_socket(
    tmp_path: Path, secret_key: str
) -> None:
    """Another process writes the run's events (this one is never told): the follower
    finds them in the log all the same, in order."""
    async with running_web(tmp_path, secret_key) as stack:
        alice = await stack.client("alice")
        task_id = await alice.start()
        async with alice.follow(task_id) as socket:
            before = await alice.events_until(socket, "credential_request")
            other = await Store.open(stack.settings, run_migrations=False)  # "replica B"
            try:
                for n in range(3):
                    await add_event(other, task_id, ev.INFO, {"text": f"from elsewhere {n}"})
            finally:
                await other.close()
            later = await alice.events_until(socket, count=3)
        assert [e["text"] for e in later] == [f"from elsewhere {n}" for n in range(3)]
        assert [e["seq"] for e in before + later] == list(range(1, len(before) + 4))


async def test_a_server_that_stops_tells_its_sockets_to_reconnect(
    tmp_path: Path, secret_key: str
) -> None:
    """SIGTERM with a follower connected: the socket is closed with 1012 (come back with
    `after`), and the shutdown does not wait on it."""
    async with aiohttp.ClientSession() as own:
        async with running_web(tmp_path, secret_key) as stack:
            alice = await stack.client("alice")
            task_id = await alice.start()
            socket = await own.ws_connect(alice.ws_url(task_id), headers=alice.headers)
            await alice.events_until(socket, "credential_request")
        closing = await socket.receive()
        assert closing.type == aiohttp.WSMsgType.CLOSE, closing
        # The server's close frame, ours or uvicorn's own as it stops (it hangs up at once,
        # without waiting for the client's close frame: aiohttp then reports 1006).
        assert closing.data == 1012, closing
