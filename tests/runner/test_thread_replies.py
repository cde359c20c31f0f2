"""Replies in a run's thread, at the runner: the races and states where a reply could be
lost, given twice, or given to the wrong agent.

The runner here is the real RunManager over SQLite, with the one-agent tool team of
`tests.runner.tool_stack` on the fake OpenAI-compatible server, so every prompt the model
was sent can be read back. Where a test needs two things to happen in one instant (two
replicas, a click and a reply), it wraps one store call to do the other first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from runner.llm import openai_verifier_factory
from runner.manager import RunManager
from runner.thread_replies import Steering
from store import Store
from store import events as ev
from store.crypto import Owner
from store.records import RunStatus
from tests.fakes.llm_records import Gate
from tests.fakes.llm_server import ToolCall
from tests.runner.helpers import FINISHED, offered_actions, wait_for_status
from tests.runner.tool_stack import AGENT, LLM_KEY, VERIFIER, ToolStack, tool_stack

THREAD = "1700000000.000100"
FRESH_KEY = "sk-review-fresh-key-7781"
_counter = iter(range(1, 10_000))


def prompts(stack: ToolStack) -> list[str]:
    """Everything the agent model was sent, one string per request (200s only)."""
    return [
        json.dumps(r.json["messages"], ensure_ascii=False)
        for r in stack.llm.requests_for(AGENT)
        if r.status == 200
    ]


async def start(runs: RunManager, task: str = "Plan a launch") -> str:
    started = await runs.start_run(
        workspace_id="T1", channel_id="C1", requester_id="UREQ", task=task, thread_ts=THREAD
    )
    return started.run.id


async def reply(
    runs: RunManager, text: str, *, user: str = "UREQ", keys: list[str] | None = None
) -> Steering:
    number = next(_counter)
    return await runs.thread_replies.reply(
        channel_id="C1",
        thread_ts=THREAD,
        user_id=user,
        text=text,
        keys=keys or [f"ts:C1:17000000{number:02d}.000200", f"event:EvREVIEW{number}"],
    )


def another_replica(s: ToolStack) -> RunManager:
    """A second RunManager on the same store and settings (a restarted or other replica)."""
    return RunManager(
        s.store,
        s.settings,
        verifier_client_factory=openai_verifier_factory(s.settings),
        poll_interval_s=0.05,
    )


async def kinds(store: Store, run_id: str) -> list[str]:
    return [e.kind for e in await store.runs.events(run_id)]


@contextlib.asynccontextmanager
async def stack(tmp_path: Path, secret_key: str, **overrides: Any) -> AsyncIterator[ToolStack]:
    overrides.setdefault("streaming", False)
    async with tool_stack(tmp_path, secret_key, **overrides) as s:
        yield s


# --- A reply given to a turn that was then cut short is given once, after the pause ---------


async def test_a_reply_given_to_a_turn_whose_key_is_rejected_is_given_once_after_the_new_key(
    tmp_path: Path, secret_key: str
) -> None:
    async with stack(tmp_path, secret_key, verifier_enabled=False) as s:
        first = Gate("First half of the plan.")
        s.llm.script(AGENT, [first, "Second half. TERMINATE"])
        run_id = await start(s.runs)
        await asyncio.wait_for(first.entered.wait(), timeout=15)
        assert await reply(s.runs, "Focus on Europe first") == Steering.HEARD
        s.llm.valid_keys.discard(LLM_KEY)  # the workspace key is revoked meanwhile
        first.open.set()

        # Turn 2 is given the reply, and the provider refuses the key: the run asks for one.
        await wait_for_status(s.store, run_id, {RunStatus.WAITING_CREDENTIAL})
        request = next(
            e
            for e in reversed(await s.store.runs.events(run_id))
            if e.kind == ev.CREDENTIAL_REQUEST
        )
        s.llm.valid_keys.add(FRESH_KEY)
        await s.runs.keys.submit(request.payload["request_id"], user_id="UREQ", secret=FRESH_KEY)
        finished = await wait_for_status(s.store, run_id, FINISHED)
        assert finished.status == RunStatus.COMPLETED

        last = prompts(s)[-1]
        assert last.count("Focus on Europe first") == 1, last


async def test_a_reply_given_to_a_turn_cut_short_by_a_restart_is_given_once_after_it(
    tmp_path: Path, secret_key: str
) -> None:
    async with stack(tmp_path, secret_key, verifier_enabled=False) as s:
        first, second = Gate("First half of the plan."), Gate("(cut short)")
        s.llm.script(AGENT, [first, second, "Second half. TERMINATE"])
        run_id = await start(s.runs)
        await asyncio.wait_for(first.entered.wait(), timeout=15)
        assert await reply(s.runs, "Focus on Europe first") == Steering.HEARD
        first.open.set()
        await asyncio.wait_for(second.entered.wait(), timeout=15)  # turn 2 has the reply
        assert json.dumps(second.request["messages"]).count("Focus on Europe first") == 1

        await s.runs.stop(grace_s=0.2)  # a deploy: the turn is cut short and handed back
        second.open.set()
        assert (await s.store.runs.get(run_id)).status == RunStatus.QUEUED

        again = another_replica(s)
        await again.start()
        try:
            finished = await wait_for_status(s.store, run_id, FINISHED)
        finally:
            await again.stop()
        assert finished.status == RunStatus.COMPLETED
        last = prompts(s)[-1]
        assert last.count("Focus on Europe first") == 1, last


def failing(actions: list[dict[str, Any]]) -> str:
    return json.dumps({"verdict": "fail", "reason": "Too vague.", "suggested_actions": actions})


# --- A long reply that answers a decision reaches the team whole ----------------------------


async def test_a_long_reply_answering_a_decision_reaches_the_team_whole(
    tmp_path: Path, secret_key: str
) -> None:
    async with stack(tmp_path, secret_key) as s:
        s.llm.script(VERIFIER, [failing([{"type": "revise", "label": "Sharpen", "params": {}}])])
        s.llm.script(AGENT, ["A vague plan.", "A sharp plan. TERMINATE"])
        run_id = await start(s.runs)
        await wait_for_status(s.store, run_id, {RunStatus.WAITING_APPROVAL})

        words = "Budget 10k, Europe only, launch in May, no paid ads, one landing page. " * 12
        text = words + "MOST IMPORTANT: name the owner of every step."
        assert len(text) < 1_500  # well inside MAX_REPLY_CHARS (4,000)
        assert await reply(s.runs, text) == Steering.REVISING
        await wait_for_status(s.store, run_id, FINISHED)
        assert "MOST IMPORTANT: name the owner of every step." in prompts(s)[-1]


# --- The same message delivered twice at once, while a decision waits, acts once -----------


async def test_a_reply_delivered_twice_at_once_while_a_decision_waits_acts_once(
    tmp_path: Path, secret_key: str
) -> None:
    async with stack(tmp_path, secret_key) as s:
        s.llm.script(VERIFIER, [failing([{"type": "revise", "label": "Sharpen", "params": {}}])])
        s.llm.script(AGENT, ["A vague plan.", "A sharp plan. TERMINATE"])
        run_id = await start(s.runs)
        await wait_for_status(s.store, run_id, {RunStatus.WAITING_APPROVAL})

        message = ["ts:C1:1700000099.000200", "msg:6f1c2a9e-client-msg-id"]
        # Slack delivers the message twice (another event id), and the second delivery is
        # handled (on another replica, say) while the first is between applying the
        # decision and remembering the message's ids.
        second: list[Steering] = []
        replies = s.runs.thread_replies
        decide = replies._decide

        async def decide_after_the_second_delivery(*args: Any, **kwargs: Any) -> Any:
            if not second:
                second.append(
                    await reply(s.runs, "Three bullets at most", keys=[*message, "event:EvDUP2"])
                )
            return await decide(*args, **kwargs)

        replies._decide = decide_after_the_second_delivery  # type: ignore[method-assign]
        first = await reply(s.runs, "Three bullets at most", keys=[*message, "event:EvDUP1"])
        outcomes = [first, *second]
        await wait_for_status(s.store, run_id, FINISHED)
        assert sorted(outcomes) == sorted([Steering.REVISING, Steering.IGNORED]), outcomes
        assert ev.HUMAN_REPLY not in await kinds(s.store, run_id)
        assert prompts(s)[-1].count("Three bullets at most") == 1, prompts(s)[-1]


# --- A reply heard just before the run finishes, or at its limit, continues it --------------


async def reached_the_model(s: ToolStack, text: str, timeout: float = 8) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if any(text in p for p in prompts(s)):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_reply_written_while_the_team_finishes_is_not_lost(
    tmp_path: Path, secret_key: str
) -> None:
    async with stack(tmp_path, secret_key) as s:
        s.llm.script(AGENT, ["The plan. TERMINATE", "Revised for Europe. TERMINATE"])
        change = s.store.runs.change
        said: list[Steering] = []

        async def finish_after_a_reply(run_id: str, run_change: Any, *args: Any) -> Any:
            if run_change.status == RunStatus.COMPLETED and not said:
                # The requester replies in the instant between the check and the finish.
                said.append(await reply(s.runs, "Make it Europe only"))
            return await change(run_id, run_change, *args)

        s.store.runs.change = finish_after_a_reply  # type: ignore[method-assign]
        run_id = await start(s.runs)
        await wait_for_status(s.store, run_id, FINISHED)
        assert said == [Steering.HEARD]  # the person was told the team reads it next turn
        assert await reached_the_model(s, "Make it Europe only"), await kinds(s.store, run_id)


async def test_a_reply_heard_during_the_last_allowed_turn_is_not_lost(
    tmp_path: Path, secret_key: str
) -> None:
    async with stack(tmp_path, secret_key, max_turns=2) as s:
        last = Gate("Step 2.")
        s.llm.script(AGENT, ["Step 1.", last, "Step 3, for Europe. TERMINATE"])
        run_id = await start(s.runs)
        await asyncio.wait_for(last.entered.wait(), timeout=15)
        assert await reply(s.runs, "Make it Europe only") == Steering.HEARD
        last.open.set()
        assert await reached_the_model(s, "Make it Europe only"), await kinds(s.store, run_id)
        finished = await wait_for_status(s.store, run_id, FINISHED)
        assert ev.RUN_CONTINUED in await kinds(s.store, run_id)  # went on after the limit
        assert finished.status == RunStatus.COMPLETED


# --- A stored key pasted into the thread never reaches the model ----------------------------


async def test_the_requesters_stored_token_pasted_into_the_thread_never_reaches_the_model(
    tmp_path: Path, secret_key: str
) -> None:
    token = "ghp_R3v13wT0k3nAbCdEfGh1234567890abcd"
    async with stack(tmp_path, secret_key) as s:
        await s.store.credentials.put(Owner("T1", "UREQ", "github"), token, actor_id="UREQ")
        first = Gate("First half of the plan.")
        s.llm.script(AGENT, [first, "Second half. TERMINATE"])
        run_id = await start(s.runs)
        await asyncio.wait_for(first.entered.wait(), timeout=15)
        said = f"Use my GitHub token {token} to read the repo"
        assert await reply(s.runs, said) == Steering.HEARD
        first.open.set()
        await wait_for_status(s.store, run_id, FINISHED)
        assert len(prompts(s)) == 2
        assert not s.llm.received(token)
        stored = json.dumps([e.payload for e in await s.store.runs.events(run_id)])
        assert token not in stored


# --- Continuing a run that stopped with an approved call not yet made hears the reply -------


async def test_continuing_a_run_cancelled_after_a_call_was_approved_hears_the_reply(
    tmp_path: Path, secret_key: str
) -> None:
    approval = {"tool_approval": ["fetch_url"], "fetch_allow_private": True}
    async with stack(tmp_path, secret_key, **approval) as s:
        s.llm.script(
            AGENT,
            [
                ToolCall("fetch_url", {"url": f"{s.pages.url}/notes"}),
                "I asked to read the notes.",
                "Summary. TERMINATE",
            ],
        )
        run_id = await start(s.runs)
        await wait_for_status(s.store, run_id, {RunStatus.WAITING_APPROVAL})
        await s.runs.stop()  # the runner replica is busy or restarting meanwhile
        approve = (await offered_actions(s.store, run_id))["approve_tool"]
        await s.runs.decide(approve, user_id="UREQ")
        await s.runs.cancel(run_id, user_id="UREQ")  # ...and then thinks better of it
        assert (await s.store.runs.get(run_id)).status == RunStatus.CANCELLED

        said = "Forget the notes, write the summary from what you know"
        assert await reply(s.runs, said) == Steering.CONTINUED
        again = another_replica(s)
        await again.start()
        try:
            await wait_for_status(s.store, run_id, FINISHED)
        finally:
            await again.stop()
        assert any(said in p for p in prompts(s)), await kinds(s.store, run_id)


# --- A reply while a click on the buttons is being applied is kept for the team ------------


async def test_a_reply_while_a_click_is_being_applied_is_kept_for_the_team(
    tmp_path: Path, secret_key: str
) -> None:
    async with stack(tmp_path, secret_key) as s:
        s.llm.script(VERIFIER, [failing([{"type": "revise", "label": "Sharpen", "params": {}}])])
        s.llm.script(AGENT, ["A vague plan.", "A plan. TERMINATE"])
        run_id = await start(s.runs)
        await wait_for_status(s.store, run_id, {RunStatus.WAITING_APPROVAL})
        # Someone clicks "continue": decided (its replica applies it a moment later, or,
        # had it died, recovery does once RUN_LEASE_S has passed).
        chosen = (await offered_actions(s.store, run_id))["continue"]
        approvers = frozenset(s.settings.approvers)
        await s.store.actions.decide(chosen, user_id="UREQ", approvers=approvers)

        outcome = await reply(s.runs, "Add a budget line")
        assert outcome != Steering.IGNORED
        action = await s.store.actions.get(chosen)
        await s.runs._actions.apply(action, decided_by="UREQ")  # the click's effect lands
        await wait_for_status(s.store, run_id, FINISHED)
        assert "Add a budget line" in prompts(s)[-1]


# --- A reply written while the verifier judges answers the decision it opens ---------------


async def test_a_reply_written_while_the_verifier_judges_answers_the_decision_it_opens(
    tmp_path: Path, secret_key: str
) -> None:
    async with stack(tmp_path, secret_key) as s:
        judging = Gate(failing([{"type": "revise", "label": "Sharpen", "params": {}}]))
        s.llm.script(VERIFIER, [judging])
        s.llm.script(AGENT, ["A vague plan.", "A sharp plan. TERMINATE"])
        run_id = await start(s.runs)
        await asyncio.wait_for(judging.entered.wait(), timeout=15)  # the message is shown
        assert await reply(s.runs, "Add dates to every step") == Steering.HEARD
        judging.open.set()
        run = await wait_for_status(s.store, run_id, FINISHED, timeout=5)
        assert run.status == RunStatus.COMPLETED
        assert "Add dates to every step" in prompts(s)[-1]
