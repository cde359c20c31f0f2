"""MCP servers from MCP_CONFIG through the runner: the tests' own MCP server (a real
process over stdio, and over streamable HTTP) that needs a token from the requester's
credentials. The token reaches the server and nothing else; a server that fails to start is
reported in the thread; no server process outlives its run."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from store import events as ev
from store.records import RunStatus
from tests.fakes.llm_server import ToolCall
from tests.fakes.mcp_process import alive_pids, http_mcp_server, read_calls, stdio_server_config
from tests.runner.helpers import FINISHED, start_run, wait_for_status
from tests.runner.tool_stack import AGENT, VERIFIER, last_user_text, tool_stack

pytestmark = pytest.mark.slow

# Not key-shaped: only never carrying it keeps it out, no shape-based scrubber.
TOKEN = "canary-mcp-token-3f9a71-must-not-leak"


def _config(tmp_path: Path, servers: dict[str, Any]) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


def _stdio(tmp_path: Path, **env: str) -> tuple[Path, Path, Path]:
    calls, pids = tmp_path / "calls.jsonl", tmp_path / "pids.txt"
    entry = stdio_server_config(calls, pids, FAKE_MCP_EXPECTED_TOKEN=TOKEN, **env)
    return _config(tmp_path, {"fakegit": entry}), calls, pids


async def _events(stack, run_id: str, kind: str | None = None) -> list[Any]:
    events = await stack.store.runs.events(run_id)
    return [e.payload for e in events if kind is None or e.kind == kind]


def _database_bytes(tmp_path: Path) -> bytes:
    return b"".join(path.read_bytes() for path in tmp_path.glob("tools.db*"))


async def test_stdio_server_gets_the_token_and_nothing_else_does(
    tmp_path: Path, secret_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config, calls, pids = _stdio(tmp_path)
    async with tool_stack(tmp_path, secret_key, mcp_config=str(config)) as stack:
        await stack.give("fakegit", TOKEN)
        stack.llm.script(
            AGENT,
            [
                ToolCall("fakegit__list_issues", {"repo": "acme/app"}),
                ToolCall("fakegit__leak_token", {}),
                "acme/app has three open issues. TERMINATE",
            ],
        )
        run = await wait_for_status(stack.store, await start_run(stack.runs, "Issues?"), FINISHED)
        assert run.status == RunStatus.COMPLETED, await _events(stack, run.id)
        recorded = read_calls(calls)
        assert [c["tool"] for c in recorded] == ["list_issues", "leak_token"]
        assert all(c["token_ok"] for c in recorded)  # the token reached its environment
        message = (await _events(stack, run.id, ev.AGENT_MESSAGE))[-1]
        shown = [(c["tool"], c["outcome"]) for c in message["tool_calls"]]
        assert shown == [("fakegit.list_issues", "ok"), ("fakegit.leak_token", "ok")]
        reflected = last_user_text(stack.llm.requests_for(AGENT)[-1].json)
        assert "acme/app#1" in reflected  # the tool's result reached the agent
        assert "[redacted]" in reflected  # the server's echo of the token did not
        run = await stack.store.runs.get(run.id)
        assert run is not None and TOKEN not in (run.team_state or "")
        assert TOKEN not in json.dumps(await _events(stack, run.id))
    assert alive_pids(pids) == []
    assert not stack.llm.received(TOKEN)
    assert TOKEN.encode() not in _database_bytes(tmp_path)
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and TOKEN not in repr(vars(record))


async def test_missing_token_is_asked_for_and_the_server_starts_with_it(
    tmp_path: Path, secret_key: str
) -> None:
    config, calls, pids = _stdio(tmp_path)
    async with tool_stack(tmp_path, secret_key, mcp_config=str(config)) as stack:
        stack.llm.script(
            AGENT,
            [
                ToolCall("fakegit__connect", {}),
                "I asked for the fakegit token.",
                ToolCall("fakegit__create_issue", {"repo": "acme/app", "title": "Flaky CI"}),
                "Created the issue. TERMINATE",
            ],
        )
        run_id = await start_run(stack.runs, "File an issue")
        await wait_for_status(stack.store, run_id, {RunStatus.WAITING_CREDENTIAL})
        assert read_calls(calls) == [] and alive_pids(pids) == []  # never started without it
        tools = [t["function"]["name"] for t in stack.llm.requests_for(AGENT)[0].json["tools"]]
        assert "fakegit__connect" in tools and "fakegit__create_issue" not in tools
        request = (await _events(stack, run_id, ev.CREDENTIAL_REQUEST))[-1]
        assert request["provider"] == "fakegit" and "fakegit.connect" in request["reason"]
        await stack.runs.keys.submit(request["request_id"], user_id="UREQ", secret=TOKEN)
        run = await wait_for_status(stack.store, run_id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        assert [(c["tool"], c["token_ok"]) for c in read_calls(calls)] == [("create_issue", True)]
        resumed = stack.llm.requests_for(AGENT)[2].json
        assert "fakegit__create_issue" in [t["function"]["name"] for t in resumed["tools"]]
        assert "fakegit credential is now available" in last_user_text(resumed)
    assert alive_pids(pids) == []
    assert not stack.llm.received(TOKEN)


async def test_streamable_http_server_gets_the_token_in_a_header_and_a_wrong_one_is_refused(
    tmp_path: Path, secret_key: str
) -> None:
    calls = tmp_path / "http-calls.jsonl"
    async with http_mcp_server(TOKEN, calls) as url:
        entry = {"url": url, "headers": {"Authorization": "Bearer ${credential:docs}"}}
        config = _config(tmp_path, {"docs": entry})
        async with tool_stack(tmp_path, secret_key, mcp_config=str(config)) as stack:
            await stack.give("docs", TOKEN)
            stack.llm.script(
                AGENT, [ToolCall("docs__list_issues", {"repo": "acme/docs"}), "Listed. TERMINATE"]
            )
            run = await wait_for_status(stack.store, await start_run(stack.runs), FINISHED)
            assert run.status == RunStatus.COMPLETED
            assert [(c["tool"], c["token_ok"]) for c in read_calls(calls)] == [
                ("list_issues", True)
            ]
            assert not stack.llm.received(TOKEN)

            await stack.give("docs", "canary-wrong-docs-token-000")
            stack.llm.script(AGENT, [ToolCall("docs__connect", {}), "The docs key was refused."])
            run_id = await start_run(stack.runs, "again")
            await wait_for_status(stack.store, run_id, {RunStatus.WAITING_CREDENTIAL})
            request = (await _events(stack, run_id, ev.CREDENTIAL_REQUEST))[-1]
            assert request["provider"] == "docs" and request["rejected"] is True
            assert "refused" in request["reason"] and "401" in request["reason"]
            warnings = await _events(stack, run_id, ev.WARNING)
            assert "docs MCP server could not be started" in warnings[0]["text"]
            assert "401 Unauthorized" in warnings[0]["text"]


async def test_a_server_that_fails_to_start_is_reported_and_the_run_goes_on(
    tmp_path: Path, secret_key: str
) -> None:
    config, _, pids = _stdio(tmp_path, FAKE_MCP_FAIL="start")
    async with tool_stack(tmp_path, secret_key, mcp_config=str(config)) as stack:
        await stack.give("fakegit", TOKEN)
        stack.llm.script(AGENT, ["Without the tools, then. TERMINATE"])
        run = await wait_for_status(stack.store, await start_run(stack.runs), FINISHED)
        assert run.status == RunStatus.COMPLETED
        warnings = await _events(stack, run.id, ev.WARNING)
        assert len(warnings) == 1
        assert "fakegit MCP server could not be started" in warnings[0]["text"]
        assert TOKEN not in warnings[0]["text"]
    assert alive_pids(pids) == []


async def test_a_server_that_never_answers_does_not_hang_the_run(
    tmp_path: Path, secret_key: str
) -> None:
    config, _, pids = _stdio(tmp_path, FAKE_MCP_FAIL="hang")
    overrides = {"mcp_config": str(config), "mcp_start_timeout_s": 1.0}
    async with tool_stack(tmp_path, secret_key, **overrides) as stack:
        await stack.give("fakegit", TOKEN)
        stack.llm.script(AGENT, ["TERMINATE"])
        run = await wait_for_status(stack.store, await start_run(stack.runs), FINISHED, timeout=20)
        assert run.status == RunStatus.COMPLETED
        warnings = await _events(stack, run.id, ev.WARNING)
        assert "did not answer in time" in warnings[0]["text"]
    assert alive_pids(pids) == []


async def test_no_server_process_outlives_its_run(tmp_path: Path, secret_key: str) -> None:
    """Parked (waiting for a decision), finished, cancelled mid-call, app stopped mid-call.
    A run's session is closed right after its last write, so "gone" is waited for (the
    MCP client gives a server 2 s to exit on its own before it terminates it)."""
    config, calls, pids = _stdio(tmp_path)
    fail = json.dumps(
        {"verdict": "fail", "reason": "Check it.", "suggested_actions": [{"type": "continue"}]}
    )
    async with tool_stack(tmp_path, secret_key, mcp_config=str(config)) as stack:
        await stack.give("fakegit", TOKEN)
        stack.llm.script(AGENT, [ToolCall("fakegit__list_issues", {"repo": "a/b"}), "Listed."])
        stack.llm.script(VERIFIER, [fail])
        parked = await start_run(stack.runs, "parks")
        await wait_for_status(stack.store, parked, {RunStatus.WAITING_APPROVAL})
        assert len(read_calls(calls)) == 1
        await _until(lambda: alive_pids(pids) == [])  # stopped as the run parked

        await stack.runs.cancel(parked, user_id="UREQ")
        stack.llm.script(AGENT, [ToolCall("fakegit__slow", {"seconds": 30}), "never"])
        cancelled = await start_run(stack.runs, "cancelled mid-call")
        await _until(lambda: [c for c in read_calls(calls) if c["tool"] == "slow"])
        assert len(alive_pids(pids)) == 1
        await stack.runs.cancel(cancelled, user_id="UREQ")
        await _until(lambda: alive_pids(pids) == [])

        stack.llm.script(AGENT, [ToolCall("fakegit__slow", {"seconds": 1}), "Slept. TERMINATE"])
        finished = await wait_for_status(stack.store, await start_run(stack.runs), FINISHED)
        assert finished.status == RunStatus.COMPLETED
        await _until(lambda: alive_pids(pids) == [])

        stack.llm.script(AGENT, [ToolCall("fakegit__slow", {"seconds": 2}), "Slept."])
        await start_run(stack.runs, "app stops mid-call")
        await _until(lambda: len([c for c in read_calls(calls) if c["tool"] == "slow"]) == 3)
        assert len(alive_pids(pids)) == 1
    # tool_stack stopped the app: the turn finished, the run was handed back, server gone.
    assert alive_pids(pids) == []
    assert len(read_calls(calls)) == 4  # no call was made twice


async def _until(condition: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_a_refused_token_echoed_by_the_server_goes_nowhere(
    tmp_path: Path, secret_key: str
) -> None:
    wrong = "canary-wrong-mcp-token-91d2-must-not-leak"
    config, calls, _ = _stdio(tmp_path)  # the server expects TOKEN and quotes what it got
    async with tool_stack(tmp_path, secret_key, mcp_config=str(config)) as stack:
        await stack.give("fakegit", wrong)
        stack.llm.script(AGENT, [ToolCall("fakegit__list_issues", {"repo": "a/b"}), "Refused."])
        run_id = await start_run(stack.runs)
        await wait_for_status(stack.store, run_id, {RunStatus.WAITING_CREDENTIAL})
        assert [c["token_ok"] for c in read_calls(calls)] == [False]
        request = (await _events(stack, run_id, ev.CREDENTIAL_REQUEST))[-1]
        assert request["rejected"] is True and "401 Bad credentials" in request["reason"]
        assert wrong not in json.dumps(await _events(stack, run_id))
        assert not stack.llm.received(wrong)
    assert wrong.encode() not in _database_bytes(tmp_path)


async def test_env_placeholders_are_hidden_like_credentials(
    tmp_path: Path, secret_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator_token = "canary-operator-env-token-55ab"
    monkeypatch.setenv("FAKEGIT_SERVICE_TOKEN", operator_token)
    calls, pids = tmp_path / "calls.jsonl", tmp_path / "pids.txt"
    entry = stdio_server_config(calls, pids, token_placeholder="${env:FAKEGIT_SERVICE_TOKEN}")
    config = _config(tmp_path, {"fakegit": entry})
    async with tool_stack(tmp_path, secret_key, mcp_config=str(config)) as stack:
        stack.llm.script(AGENT, [ToolCall("fakegit__leak_token", {}), "Leaked? TERMINATE"])
        run = await wait_for_status(stack.store, await start_run(stack.runs), FINISHED)
        assert run.status == RunStatus.COMPLETED and len(read_calls(calls)) == 1
        assert not stack.llm.received(operator_token)
        assert operator_token not in json.dumps(await _events(stack, run.id))


async def test_an_approved_mcp_call_waits_for_its_server_s_credential(
    tmp_path: Path, secret_key: str
) -> None:
    config, calls, _ = _stdio(tmp_path)
    overrides = {"mcp_config": str(config), "tool_approval": ["fakegit.*"]}
    async with tool_stack(tmp_path, secret_key, **overrides) as stack:
        await stack.give("fakegit", TOKEN)
        stack.llm.script(
            AGENT,
            [
                ToolCall("fakegit__create_issue", {"repo": "acme/app", "title": "Flaky CI"}),
                "I asked to open the issue.",
                "Opened it. TERMINATE",
            ],
        )
        run_id = await start_run(stack.runs, "Open an issue")
        await wait_for_status(stack.store, run_id, {RunStatus.WAITING_APPROVAL})
        from store.crypto import Owner

        await stack.store.credentials.delete(Owner("T1", "UREQ", "fakegit"), actor_id="UREQ")
        offered = [e for e in await _events(stack, run_id, ev.ACTIONS_OFFERED)][-1]
        approve = next(a["id"] for a in offered["actions"] if a["type"] == "approve_tool")
        await stack.runs.decide(approve, user_id="UREQ")
        await wait_for_status(stack.store, run_id, {RunStatus.WAITING_CREDENTIAL})
        assert read_calls(calls) == []  # not made, not spent: it waits for the token
        request = (await _events(stack, run_id, ev.CREDENTIAL_REQUEST))[-1]
        await stack.runs.keys.submit(request["request_id"], user_id="UREQ", secret=TOKEN)
        run = await wait_for_status(stack.store, run_id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        assert [(c["tool"], c["token_ok"]) for c in read_calls(calls)] == [("create_issue", True)]
