"""A run shown in Slack keeps close to its thread: when Slack shows messages slower than
the team writes them, the run takes its next turn only once its thread has at most a few
events left to show (counted at every model call, not timed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from runner.pacing import MAX_UNSHOWN
from store import Store
from tests.db import all_runs
from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL, running_stack, start_task, text_of, verdict

KEY = "sk-pacing-key-0001"
TURNS = 8
TURN = re.compile(r"turn (\d+)")


async def test_a_run_waits_for_its_thread_before_each_turn(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(
        tmp_path, secret_key, valid_keys={KEY}, llm_api_key=KEY, max_turns=TURNS
    ) as stack:
        stack.slack.slow("chat.postMessage", 0.3, times=200)  # each post takes Slack a while
        store = await Store.open(stack.settings)
        unshown_at_each_call: list[int] = []

        async def count_unshown(_: dict[str, Any]) -> None:
            (run,) = await all_runs(store)
            unshown_at_each_call.append(await store.outbox.unshown(run.id))

        try:
            stack.llm.set_handler(AGENT_MODEL, count_unshown)  # then the default reply
            stack.llm.default(AGENT_MODEL, "Another step of the work.")
            stack.llm.default(VERIFIER_MODEL, verdict())
            await start_task(stack, "pace me")
            await stack.slack.wait_for(
                lambda s: any("Run finished" in text_of(m) for m in stack.thread()), timeout=60
            )
        finally:
            await store.close()
    assert len(unshown_at_each_call) == TURNS
    assert max(unshown_at_each_call) <= MAX_UNSHOWN, unshown_at_each_call
    shown = [TURN.search(text_of(m)) for m in stack.thread()]
    assert [int(found.group(1)) for found in shown if found] == list(range(1, TURNS + 1))
