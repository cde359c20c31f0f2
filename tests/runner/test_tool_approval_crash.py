"""An approved tool call runs exactly once across crashes: a runner process killed with
SIGKILL between the approval and the call leaves the call to the next process (once, even
with the approval replayed); a process that died during the call does not repeat it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from runner.llm import openai_verifier_factory
from runner.manager import RunManager
from store import Store
from store import events as ev
from store.actions import DecisionOutcome
from store.records import RunStatus
from tests.db import add_event, decided_long_ago
from tests.fakes.llm_server import FakeLLMServer, ToolCall
from tests.runner import crash_child
from tests.runner.child_process import child
from tests.runner.helpers import FINISHED, offered_actions, runner_settings, wait_for_status
from tests.runner.tool_stack import (
    AGENT,
    LLM_KEY,
    last_user_text,
    serving_pages,
    tool_stack,
    tool_team_file,
)

APPROVERS = frozenset({"UBOSS"})


def _script(llm: FakeLLMServer, url: str) -> None:
    llm.script(
        AGENT,
        [
            ToolCall("fetch_url", {"url": f"{url}/notes"}),
            "I asked to read the notes.",
            "Version 4.2 ships queues. TERMINATE",
        ],
    )


@pytest.mark.slow
async def test_killed_between_approval_and_call_the_next_process_calls_once(
    tmp_path: Path, secret_key: str
) -> None:
    async with FakeLLMServer(valid_keys={LLM_KEY}) as llm, serving_pages() as pages:
        _script(llm, pages.url)
        team = tool_team_file(tmp_path)
        settings = runner_settings(
            tmp_path, secret_key, team, "approval.db", run_lease_s=crash_child.LEASE_S
        )
        env = {
            "LLM_BASE_URL": llm.base_url,
            "LLM_MODEL": AGENT,
            "LLM_MAX_RETRIES": "0",
            "OPENROUTER_API_KEY": LLM_KEY,
            "TOOL_APPROVAL": "fetch_url",
            "FETCH_ALLOW_PRIVATE": "true",
            "APPROVERS": "UBOSS",
        }
        store = await Store.open(settings)
        try:
            async with child(settings, tmp_path, "serve", env) as first:
                await first.expect("SERVING")
                started = await RunManager(store, settings).start_run(
                    workspace_id="T1", channel_id="C1", requester_id="UREQ", task="Read notes"
                )
                run_id = started.run.id
                await wait_for_status(store, run_id, {RunStatus.WAITING_APPROVAL}, timeout=30)
                approve = (await offered_actions(store, run_id))["approve_tool"]
                # A click decided it, and the process died before applying it: SIGKILL.
                decision = await store.actions.decide(approve, user_id="UBOSS", approvers=APPROVERS)
                assert decision.outcome == DecisionOutcome.APPROVED
                await first.kill()
            assert pages.hits == []
            await decided_long_ago(store, approve)  # no waiting out the dead process's lease
            async with child(settings, tmp_path, "serve", env) as second:
                await second.expect("SERVING")
                run = await wait_for_status(store, run_id, FINISHED, timeout=30)
                replayed = await store.actions.decide(approve, user_id="UBOSS", approvers=APPROVERS)
                assert replayed.outcome != DecisionOutcome.APPROVED
                # Recovery passes after the end find nothing left to apply or call.
                await second.recovery_passes(2, started_after=time.time())
            assert run.status == RunStatus.COMPLETED
            assert [hit["path"] for hit in pages.hits] == ["/notes"]  # exactly once
            results = [e for e in await store.runs.events(run_id) if e.kind == ev.TOOL_RESULT]
            assert [r.payload["outcome"] for r in results] == ["ok"]
            assert "Version 4.2 ships queues." in last_user_text(llm.requests_for(AGENT)[-1].json)
        finally:
            await store.close()


async def test_a_call_that_may_have_run_before_a_crash_is_not_repeated(
    tmp_path: Path, secret_key: str
) -> None:
    approval = {"tool_approval": ["fetch_url"], "fetch_allow_private": True}
    async with tool_stack(tmp_path, secret_key, **approval) as stack:
        _script(stack.llm, stack.pages.url)
        started = await stack.runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="Read notes"
        )
        run_id = started.run.id
        await wait_for_status(stack.store, run_id, {RunStatus.WAITING_APPROVAL})
        approve = (await offered_actions(stack.store, run_id))["approve_tool"]
        # What a process that died during the call leaves behind: the call's start recorded
        # (as the executor writes it just before calling), the decision never applied here.
        payload = {"action_id": approve, "tool": "fetch_url", "arguments": "", "decided_by": "U"}
        await add_event(stack.store, run_id, ev.TOOL_CALL_STARTED, payload)
        decided = await stack.store.actions.decide(approve, user_id="UREQ", approvers=frozenset())
        assert decided.outcome == DecisionOutcome.APPROVED
        await decided_long_ago(stack.store, approve)  # recovery applies it now
        run = await wait_for_status(stack.store, run_id, FINISHED)
        assert run.status == RunStatus.COMPLETED
        assert stack.pages.hits == []  # not made a second time
        result = [e for e in await stack.store.runs.events(run_id) if e.kind == ev.TOOL_RESULT]
        assert result[-1].payload["outcome"] == "unknown"
        told = last_user_text(stack.llm.requests_for(AGENT)[-1].json)
        assert "not repeated automatically" in told


async def test_shutdown_during_an_approved_call_reports_it_unknown_not_failed(
    tmp_path: Path, secret_key: str
) -> None:
    approval = {"tool_approval": ["fetch_url"], "fetch_allow_private": True}
    async with tool_stack(tmp_path, secret_key, **approval) as stack:
        stack.llm.script(
            AGENT,
            [
                ToolCall("fetch_url", {"url": f"{stack.pages.url}/slow"}),
                "I asked to read it.",
                "I will check whether it was read. TERMINATE",
            ],
        )
        started = await stack.runs.start_run(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="Read slowly"
        )
        run_id = started.run.id
        await wait_for_status(stack.store, run_id, {RunStatus.WAITING_APPROVAL})
        approve = (await offered_actions(stack.store, run_id))["approve_tool"]
        await stack.runs.decide(approve, user_id="UREQ")
        async with asyncio.timeout(10):
            while not stack.pages.hits:  # the call is on its way
                await asyncio.sleep(0.02)
        await stack.runs.stop(grace_s=0.1)  # the app shuts down during the call
        run = await stack.store.runs.get(run_id)
        assert run is not None and run.status == RunStatus.QUEUED  # handed back
        kinds = [e.kind for e in await stack.store.runs.events(run_id)]
        assert ev.TOOL_CALL_STARTED in kinds and ev.TOOL_RESULT not in kinds
        again = RunManager(
            stack.store,
            stack.settings,
            verifier_client_factory=openai_verifier_factory(stack.settings),
            poll_interval_s=0.05,
        )
        await again.start()
        try:
            run = await wait_for_status(stack.store, run_id, FINISHED)
        finally:
            await again.stop()
        assert run.status == RunStatus.COMPLETED
        assert len(stack.pages.hits) == 1  # not made a second time
        result = [e for e in await stack.store.runs.events(run_id) if e.kind == ev.TOOL_RESULT]
        assert [r.payload["outcome"] for r in result] == ["unknown"]
