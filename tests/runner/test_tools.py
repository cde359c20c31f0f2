"""Agents' tools through the runner over real HTTP: web_search against the fake Tavily API
(missing key asked for, refused key asked for again), fetch_url's refusals seen by the
agent, and calls held for a person's approval (approve once, deny with a reason)."""

from __future__ import annotations

import json
from pathlib import Path

from runner.approved_calls import described
from store import events as ev
from store.actions import DecisionOutcome
from store.records import RunStatus
from tests.fakes.llm_server import ToolCall
from tests.runner.helpers import FINISHED, offered_actions, start_run, wait_for_status
from tests.runner.tool_stack import AGENT, Pages, last_user_text, tool_stack

TAVILY_KEY = "tvly-tools-test-key-8d2e"


async def _events(stack, run_id: str, kind: str) -> list[dict]:
    return [e.payload for e in await stack.store.runs.events(run_id) if e.kind == kind]


async def test_web_search_asks_for_the_missing_key_then_uses_the_result(
    tmp_path: Path, secret_key: str
) -> None:
    async with tool_stack(tmp_path, secret_key, search_keys={TAVILY_KEY}) as stack:
        stack.search.results_for(
            "queue libraries",
            [
                {
                    "title": "Celery",
                    "url": "https://celery.example/",
                    "content": "Task queue.",
                    "score": 0.9,
                }
            ],
        )
        stack.llm.script(
            AGENT,
            [
                ToolCall("web_search", {"query": "queue libraries"}),
                "I need a search key first.",
                ToolCall("web_search", {"query": "queue libraries"}),
                "Celery is a task queue (https://celery.example/). TERMINATE",
            ],
        )
        run_id = await start_run(stack.runs, "Find a queue library")
        waiting = await wait_for_status(stack.store, run_id, {RunStatus.WAITING_CREDENTIAL})
        request = (await _events(stack, run_id, ev.CREDENTIAL_REQUEST))[-1]
        assert request["provider"] == "tavily" and "web_search" in request["reason"]
        assert request["rejected"] is False
        assert stack.search.requests == []  # the call was not made without a key
        message = (await _events(stack, run_id, ev.AGENT_MESSAGE))[-1]
        assert message["tool_calls"][0]["outcome"] == "needs_credential"

        result = await stack.runs.keys.submit(
            request["request_id"], user_id="UREQ", secret=TAVILY_KEY
        )
        assert result.run_resumed
        run = await wait_for_status(stack.store, waiting.id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        searched = stack.search.requests[-1]
        assert searched.headers["Authorization"] == f"Bearer {TAVILY_KEY}"
        assert searched.json["query"] == "queue libraries"
        # The resumed turn was told the key arrived; the next model call read the result.
        prompts = [last_user_text(r.json) for r in stack.llm.requests_for(AGENT)]
        assert "tavily credential is now available" in prompts[2]
        assert "Task queue." in prompts[3] and "celery.example" in prompts[3]
        assert all(TAVILY_KEY not in prompt for prompt in prompts)
        calls = (await _events(stack, run_id, ev.AGENT_MESSAGE))[-1]["tool_calls"]
        assert calls == [
            {
                "tool": "web_search",
                "arguments": 'query="queue libraries"',
                "outcome": "ok",
                "size": calls[0]["size"],
            }
        ]
        assert calls[0]["size"] > 0


async def test_a_refused_search_key_is_asked_for_again(tmp_path: Path, secret_key: str) -> None:
    async with tool_stack(tmp_path, secret_key, search_keys={TAVILY_KEY}) as stack:
        await stack.give("tavily", "tvly-revoked-key-0000")
        stack.llm.script(AGENT, [ToolCall("web_search", {"query": "x"}), "The key was refused."])
        run_id = await start_run(stack.runs, "Search x")
        await wait_for_status(stack.store, run_id, {RunStatus.WAITING_CREDENTIAL})
        assert [r.status for r in stack.search.requests] == [401]
        request = (await _events(stack, run_id, ev.CREDENTIAL_REQUEST))[-1]
        assert request["provider"] == "tavily" and request["rejected"] is True
        assert "refused" in request["reason"]
        message = (await _events(stack, run_id, ev.AGENT_MESSAGE))[-1]
        assert message["tool_calls"][0]["outcome"] == "key_refused"
        assert "tvly-revoked-key-0000" not in str(await stack.store.runs.events(run_id))


async def test_fetch_url_refusals_reach_the_agent_not_the_network(
    tmp_path: Path, secret_key: str
) -> None:
    async with tool_stack(tmp_path, secret_key) as stack:
        stack.llm.script(
            AGENT,
            [
                ToolCall("fetch_url", {"url": f"{stack.pages.url}/secret"}),
                ToolCall("fetch_url", {"url": "http://169.254.169.254/latest/meta-data/"}),
                "Both addresses are internal. TERMINATE",
            ],
        )
        run = await wait_for_status(stack.store, await start_run(stack.runs, "Read"), FINISHED)
        assert run.status == RunStatus.COMPLETED
        assert stack.pages.hits == []
        reflected = last_user_text(stack.llm.requests_for(AGENT)[-1].json)
        assert reflected.count("private or reserved address") + reflected.count("not allowed") >= 2
        calls = (await _events(stack, run.id, ev.AGENT_MESSAGE))[-1]["tool_calls"]
        assert [c["outcome"] for c in calls] == ["error", "error"]


async def _held_fetch(stack, task: str = "Read the release notes") -> tuple[str, dict[str, str]]:
    """A run whose worker asked to fetch the page, held by TOOL_APPROVAL=fetch_url."""
    run_id = await start_run(stack.runs, task)
    await wait_for_status(stack.store, run_id, {RunStatus.WAITING_APPROVAL})
    return run_id, await offered_actions(stack.store, run_id)


def _script_fetch(stack, *after: str) -> None:
    stack.llm.script(
        AGENT,
        [ToolCall("fetch_url", {"url": f"{stack.pages.url}/notes"}), "I asked to read it.", *after],
    )


async def test_approved_call_runs_exactly_once_even_when_the_click_is_replayed(
    tmp_path: Path, secret_key: str
) -> None:
    approval = {"tool_approval": ["fetch_url"], "fetch_allow_private": True, "approvers": ["UBOSS"]}
    async with tool_stack(tmp_path, secret_key, **approval) as stack:
        _script_fetch(stack, "Version 4.2 ships queues. TERMINATE")
        run_id, actions = await _held_fetch(stack)
        assert set(actions) == {"approve_tool", "deny_tool"}
        assert stack.pages.hits == []  # held: nothing fetched yet
        offer = (await _events(stack, run_id, ev.ACTIONS_OFFERED))[-1]
        assert offer["tool_call"]["tool"] == "fetch_url"
        assert offer["tool_call"]["arguments"] == {"url": f"{stack.pages.url}/notes"}
        assert offer["tool_call"]["agent"] == "worker"

        stranger = await stack.runs.decide(actions["approve_tool"], user_id="USTRANGER")
        assert stranger.outcome == DecisionOutcome.NOT_AUTHORISED
        first = await stack.runs.decide(actions["approve_tool"], user_id="UBOSS")
        again = await stack.runs.decide(actions["approve_tool"], user_id="UBOSS")
        deny_late = await stack.runs.decide(actions["deny_tool"], user_id="UREQ")
        assert first.outcome == DecisionOutcome.APPROVED
        assert again.outcome != DecisionOutcome.APPROVED
        assert deny_late.outcome != DecisionOutcome.APPROVED
        run = await wait_for_status(stack.store, run_id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        assert [hit["path"] for hit in stack.pages.hits] == ["/notes"]  # exactly once
        result = (await _events(stack, run_id, ev.TOOL_RESULT))[-1]
        assert result["outcome"] == "ok" and result["decided_by"] == "UBOSS"
        told = last_user_text(stack.llm.requests_for(AGENT)[-1].json)
        assert "approved your call fetch_url" in told and "Version 4.2 ships queues." in told


async def test_denied_call_tells_the_agent_who_and_why(tmp_path: Path, secret_key: str) -> None:
    approval = {"tool_approval": ["fetch_*"], "fetch_allow_private": True}
    async with tool_stack(tmp_path, secret_key, **approval) as stack:
        _script_fetch(stack, "Understood, I will not read it. TERMINATE")
        run_id, actions = await _held_fetch(stack)
        denied = await stack.runs.decide(
            actions["deny_tool"], user_id="UREQ", note="Use the public changelog instead."
        )
        assert denied.outcome == DecisionOutcome.APPROVED
        run = await wait_for_status(stack.store, run_id, FINISHED)
        assert run.status == RunStatus.COMPLETED and stack.pages.hits == []
        told = last_user_text(stack.llm.requests_for(AGENT)[-1].json)
        assert "UREQ" in told and "denied your call fetch_url" in told
        assert "Use the public changelog instead." in told
        decided = (await _events(stack, run_id, ev.ACTION_RESULT))[-1]
        assert (
            decided["type"] == "deny_tool"
            and decided["note"] == "Use the public changelog instead."
        )
        assert await _events(stack, run_id, ev.TOOL_RESULT) == []


async def test_decision_after_the_run_was_stopped_is_refused(
    tmp_path: Path, secret_key: str
) -> None:
    approval = {"tool_approval": ["fetch_url"], "fetch_allow_private": True}
    async with tool_stack(tmp_path, secret_key, **approval) as stack:
        _script_fetch(stack)
        run_id, actions = await _held_fetch(stack)
        await stack.runs.cancel(run_id, user_id="UREQ")
        late = await stack.runs.decide(actions["approve_tool"], user_id="UREQ")
        assert late.outcome == DecisionOutcome.RUN_NOT_WAITING
        assert (await stack.store.runs.get(run_id)).status == RunStatus.CANCELLED
        assert stack.pages.hits == []


async def test_auto_approved_tools_run_without_asking(tmp_path: Path, secret_key: str) -> None:
    policy = {
        "tool_approval": ["fetch_*"],
        "tool_auto_approve": ["fetch_url"],
        "fetch_allow_private": True,
    }
    async with tool_stack(tmp_path, secret_key, **policy) as stack:
        _script_fetch(stack, "TERMINATE")
        run = await wait_for_status(stack.store, await start_run(stack.runs, "Read"), FINISHED)
        assert run.status == RunStatus.COMPLETED
        assert len(stack.pages.hits) == 1
        assert await _events(stack, run.id, ev.ACTIONS_OFFERED) == []


def test_described_call_is_short_and_names_the_tool() -> None:
    from runner.run_log import ApprovedCall

    call = ApprovedCall(
        "a", "worker", "fetch_url", {"url": "https://x/" + "y" * 500}, "c", "U1", False
    )
    text = described(call)
    assert text.startswith('fetch_url(url="https://x/') and len(text) < 340


def _http_tool(pages: Pages) -> list[dict]:
    """TEAM_CONFIG's own HTTP tool (autogen-ext's declarative HttpTool) with a credential
    placeholder in its Authorization header."""
    port = int(pages.url.rsplit(":", 1)[1])
    return [
        {
            "provider": "autogen_ext.tools.http.HttpTool",
            "component_type": "tool",
            "config": {
                "name": "list_tracker_issues",
                "description": "List the issues of the team's tracker.",
                "scheme": "http",
                "host": "127.0.0.1",
                "port": port,
                "path": "/api/issues",
                "method": "GET",
                "headers": {"Authorization": "Bearer ${credential:tracker}"},
                "json_schema": {"type": "object", "properties": {"state": {"type": "string"}}},
                "return_type": "json",
            },
        }
    ]


async def test_http_tool_header_is_filled_per_call_and_a_refusal_asks_again(
    tmp_path: Path, secret_key: str
) -> None:
    tracker_key = "canary-tracker-key-5b7c-must-not-leak"
    async with tool_stack(tmp_path, secret_key, team_tools=_http_tool) as stack:
        await stack.give("tracker", tracker_key)
        stack.llm.script(
            AGENT,
            [ToolCall("list_tracker_issues", {"state": "open"}), "Two open issues. TERMINATE"],
        )
        run = await wait_for_status(stack.store, await start_run(stack.runs), FINISHED)
        assert run.status == RunStatus.COMPLETED
        assert stack.pages.hits[-1]["headers"]["Authorization"] == f"Bearer {tracker_key}"
        assert "Flaky deploy" in last_user_text(stack.llm.requests_for(AGENT)[-1].json)
        assert not stack.llm.received(tracker_key)
        verifier_prompt = last_user_text(stack.llm.requests_for("verifier-model")[-1].json)
        assert "list_tracker_issues(state=" in verifier_prompt  # the verifier sees tool use

        stack.pages.status = 401
        stack.llm.script(AGENT, [ToolCall("list_tracker_issues", {}), "The key was refused."])
        run_id = await start_run(stack.runs, "again")
        await wait_for_status(stack.store, run_id, {RunStatus.WAITING_CREDENTIAL})
        request = (await _events(stack, run_id, ev.CREDENTIAL_REQUEST))[-1]
        assert request["provider"] == "tracker" and request["rejected"] is True
        every = [e.payload for e in await stack.store.runs.events(run_id)]
        assert tracker_key not in json.dumps(every)


async def test_a_held_call_is_judged_but_only_its_own_buttons_are_offered(
    tmp_path: Path, secret_key: str
) -> None:
    fail = json.dumps(
        {
            "verdict": "fail",
            "reason": "Reading that page is off-task.",
            "suggested_actions": [{"type": "revise", "params": {"feedback": "Stay on task."}}],
        }
    )
    approval = {"tool_approval": ["fetch_url"], "fetch_allow_private": True}
    async with tool_stack(tmp_path, secret_key, **approval) as stack:
        stack.llm.script("verifier-model", [fail])
        _script_fetch(stack, "Version 4.2 ships queues. TERMINATE")
        run_id, actions = await _held_fetch(stack)
        assert set(actions) == {"approve_tool", "deny_tool"}
        verdicts = await _events(stack, run_id, ev.VERIFIER_RESULT)
        assert [v["verdict"] for v in verdicts] == ["fail"]  # shown beside the held call
        await stack.runs.decide(actions["approve_tool"], user_id="UREQ")
        run = await wait_for_status(stack.store, run_id, FINISHED)
        assert run.status == RunStatus.COMPLETED and len(stack.pages.hits) == 1
        assert len(await _events(stack, run_id, ev.ACTIONS_OFFERED)) == 1


async def test_arguments_too_long_to_review_are_not_held(tmp_path: Path, secret_key: str) -> None:
    approval = {"tool_approval": ["fetch_url"], "fetch_allow_private": True}
    async with tool_stack(tmp_path, secret_key, **approval) as stack:
        long_url = f"{stack.pages.url}/notes?q=" + "x" * 9000
        stack.llm.script(AGENT, [ToolCall("fetch_url", {"url": long_url}), "Too long. TERMINATE"])
        run = await wait_for_status(stack.store, await start_run(stack.runs), FINISHED)
        assert run.status == RunStatus.COMPLETED and stack.pages.hits == []
        assert await _events(stack, run.id, ev.ACTIONS_OFFERED) == []
        told = last_user_text(stack.llm.requests_for(AGENT)[-1].json)
        assert "too long to review" in told


async def test_a_key_and_a_held_call_in_one_turn_ask_for_the_key_and_say_so(
    tmp_path: Path, secret_key: str
) -> None:
    approval = {"tool_approval": ["fetch_url"], "fetch_allow_private": True}
    async with tool_stack(tmp_path, secret_key, search_keys={TAVILY_KEY}, **approval) as stack:
        stack.llm.script(
            AGENT,
            [
                ToolCall("web_search", {"query": "release notes"}),
                ToolCall("fetch_url", {"url": f"{stack.pages.url}/notes"}),
                "I need a key and an approval.",
            ],
        )
        run_id = await start_run(stack.runs, "Find and read the notes")
        await wait_for_status(stack.store, run_id, {RunStatus.WAITING_CREDENTIAL})
        warning = (await _events(stack, run_id, ev.WARNING))[-1]["text"]
        assert "call to fetch_url was not offered for approval" in warning
        assert "tavily key first" in warning
        assert await _events(stack, run_id, ev.ACTIONS_OFFERED) == []
        assert stack.pages.hits == [] and stack.search.requests == []
