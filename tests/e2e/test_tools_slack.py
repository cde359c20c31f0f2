"""Tools as a Slack user sees them, end to end over HTTP: an MCP server whose token the
requester gives in the private modal (and that goes nowhere else), tool calls shown in the
thread, and a held call approved or denied with the buttons."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import ids
from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL, Stack, button, running_stack, verdict
from tests.fakes.llm_server import ToolCall
from tests.fakes.mcp_process import alive_pids, read_calls, stdio_server_config
from tests.runner.tool_stack import LLM_KEY, Pages, serving_pages, tool_team_file

TOKEN = "canary-slack-mcp-token-7e21c4-must-not-leak"


def _blocks(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks"), ensure_ascii=False)


async def _message_with(stack: Stack, text: str, timeout: float = 20) -> dict[str, Any]:
    return await stack.slack.wait_for(
        lambda s: next((m for m in stack.thread() if text in _blocks(m)), None), timeout=timeout
    )


@pytest.mark.slow
async def test_mcp_token_asked_in_the_modal_reaches_only_the_server(
    tmp_path: Path, secret_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    calls, pids = tmp_path / "calls.jsonl", tmp_path / "pids.txt"
    server = stdio_server_config(calls, pids, FAKE_MCP_EXPECTED_TOKEN=TOKEN)
    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": {"fakegit": server}}))
    providers = {
        "fakegit": {
            "title": "FakeGit access token",
            "hint": "A token with the repo scope.",
            "url": "https://fakegit.example/settings/tokens",
        }
    }
    (tmp_path / "providers.json").write_text(json.dumps(providers))
    overrides = {
        "team_config": str(tool_team_file(tmp_path)),
        "openrouter_api_key": LLM_KEY,
        "mcp_config": str(tmp_path / "mcp.json"),
        "providers_file": str(tmp_path / "providers.json"),
        "log_level": "DEBUG",
    }
    async with running_stack(tmp_path, secret_key, valid_keys={LLM_KEY}, **overrides) as stack:
        stack.llm.script(
            AGENT_MODEL,
            [
                ToolCall("fakegit__connect", {}),
                "I need the FakeGit token to read the issues.",
                ToolCall("fakegit__list_issues", {"repo": "acme/app"}),
                ToolCall("fakegit__leak_token", {}),
                "acme/app has two open issues and one closed. TERMINATE",
            ],
        )
        stack.llm.default(VERIFIER_MODEL, verdict())
        status, body, _ = await stack.command("Summarise the issues of acme/app")
        assert (status, body) == (200, "")

        request = await _message_with(stack, ids.CREDENTIAL_OPEN)
        assert "fakegit" in _blocks(request)
        await stack.click(request, ids.CREDENTIAL_OPEN, user_id="U1")
        await stack.slack.wait_for(lambda s: s.views_opened)
        modal = json.dumps(stack.slack.views_opened[-1])
        assert "FakeGit access token" in modal and "A token with the repo scope." in modal
        assert "https://fakegit.example/settings/tokens" in modal
        status, answer, _ = await stack.submit(
            stack.slack.views_opened[-1],
            {ids.CREDENTIAL_INPUT_BLOCK: {ids.CREDENTIAL_INPUT: TOKEN}},
            "U1",
        )
        assert status == 200 and "errors" not in answer

        await _message_with(stack, "Run finished", timeout=30)
        shown = await _message_with(stack, "fakegit.list_issues")
        assert "acme/app" in _blocks(shown) and "ok" in _blocks(shown)
        assert "fakegit.leak_token" in _blocks(shown)
        assert "acme/app#1" not in _blocks(shown)  # results are not pasted into Slack
        recorded = read_calls(calls)
        assert [c["tool"] for c in recorded] == ["list_issues", "leak_token"]
        assert all(c["token_ok"] for c in recorded)
        slack_traffic = json.dumps(
            [(c.params, c.response) for c in stack.slack.calls] + [stack.slack.responses],
            default=str,
        )
        llm_bodies = json.dumps([r.json for r in stack.llm.requests])
        assert "acme/app#1" in llm_bodies  # the agent did read the result
    assert alive_pids(pids) == []
    assert TOKEN not in slack_traffic
    assert TOKEN not in llm_bodies
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and TOKEN not in repr(vars(record))
    for path in tmp_path.glob("e2e.db*"):
        assert TOKEN.encode() not in path.read_bytes(), path.name


@contextlib.asynccontextmanager
async def _held_fetch(tmp_path: Path, secret_key: str) -> AsyncIterator[tuple[Stack, Pages]]:
    """The app with fetch_url held for approval (UBOSS approves) and a page to fetch."""
    async with serving_pages() as pages:
        overrides = {
            "team_config": str(tool_team_file(tmp_path)),
            "openrouter_api_key": LLM_KEY,
            "tool_approval": ["fetch_url"],
            "fetch_allow_private": True,
            "approvers": ["UBOSS"],
        }
        async with running_stack(tmp_path, secret_key, valid_keys={LLM_KEY}, **overrides) as stack:
            stack.llm.default(VERIFIER_MODEL, verdict())
            yield stack, pages


async def test_held_call_is_decided_with_the_buttons(tmp_path: Path, secret_key: str) -> None:
    async with _held_fetch(tmp_path, secret_key) as (stack, pages):
        stack.llm.script(
            AGENT_MODEL,
            [
                ToolCall("fetch_url", {"url": f"{pages.url}/notes"}),
                "I asked to read the notes.",
                "Understood, not reading them. TERMINATE",
            ],
        )
        await stack.command("Read the release notes")
        offer = await _message_with(stack, ids.TOOL_DENY)
        assert "worker" in _blocks(offer) and "fetch_url" in _blocks(offer)
        assert f"{pages.url}/notes" in _blocks(offer)  # exactly what would run

        await stack.click(offer, ids.TOOL_DENY, user_id="U2")  # neither requester nor approver
        refusal = await stack.slack.wait_for(
            lambda s: [e for e in s.ephemerals if e["user"] == "U2"]
        )
        assert "Only the person who started this run" in refusal[-1]["text"]
        assert stack.slack.views_opened == []
        await stack.click(offer, f"{ids.APPROVE_PREFIX}0", user_id="U2")
        await stack.slack.wait_for(
            lambda s: len([e for e in s.ephemerals if e["user"] == "U2"]) == 2
        )

        await stack.click(offer, ids.TOOL_DENY, user_id="U1")
        await stack.slack.wait_for(lambda s: s.views_opened)
        deny_view = stack.slack.views_opened[-1]
        assert deny_view["callback_id"] == ids.TOOL_DENY_MODAL
        reason = {ids.TOOL_DENY_REASON_BLOCK: {ids.TOOL_DENY_REASON_INPUT: "Not today."}}
        status, answer, _ = await stack.submit(deny_view, reason, "U1")
        assert status == 200 and "errors" not in answer
        denied = await _message_with(stack, "Denied by")
        assert "Not today." in _blocks(denied) and button(denied, ids.TOOL_DENY) is None
        await _message_with(stack, "Run finished", timeout=30)
        assert pages.hits == []
        told = json.dumps(stack.llm.requests_for(AGENT_MODEL)[-1].json)
        assert "Not today." in told and "U1" in told

        # The same form again, after the decision: refused inline, nothing changes.
        status, answer, _ = await stack.submit(deny_view, reason, "U1")
        assert status == 200 and "errors" in answer


async def test_approved_call_runs_once_and_shows_its_result(
    tmp_path: Path, secret_key: str
) -> None:
    async with _held_fetch(tmp_path, secret_key) as (stack, pages):
        stack.llm.script(
            AGENT_MODEL,
            [
                ToolCall("fetch_url", {"url": f"{pages.url}/notes"}),
                "I asked to read the notes.",
                "Version 4.2 ships queues. TERMINATE",
            ],
        )
        await stack.command("Read the release notes")
        offer = await _message_with(stack, ids.TOOL_DENY)
        await stack.click(offer, f"{ids.APPROVE_PREFIX}0", user_id="UBOSS")
        await stack.click(offer, f"{ids.APPROVE_PREFIX}0", user_id="UBOSS")  # replayed
        await _message_with(stack, "Approved by")
        ran = await _message_with(stack, "fetch_url` ", timeout=20)
        await _message_with(stack, "Run finished", timeout=30)
        assert [hit["path"] for hit in pages.hits] == ["/notes"]
        ran = next(m for m in stack.thread() if ":hammer_and_wrench:" in _blocks(m))
        assert "ok" in _blocks(ran) and "Version 4.2" not in _blocks(ran)
        answers = [e for e in stack.slack.ephemerals if e["user"] == "UBOSS"]
        assert answers and (  # decided already, or even finished by now
            "already decided" in answers[-1]["text"] or "no longer waiting" in answers[-1]["text"]
        )
        assert "approved by <@UBOSS>" in _blocks(ran)
