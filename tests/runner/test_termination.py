"""The team's own termination condition holds across turns, pauses and restarts."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import TerminationCondition
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.messages import TextMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.replay import ReplayChatCompletionClient

from runner.conditions import TextMentionFromTermination
from runner.manager import RunManager
from runner.team_config import DEFAULT_TEAM_PATH
from runner.termination import split_termination
from store import Store
from store import events as ev
from store.records import Run, RunStatus
from tests.runner.helpers import (
    FINISHED,
    ScriptedVerifier,
    choose,
    replay_team_file,
    runner_settings,
    running_manager,
    start_run,
    verdict,
    wait_for_status,
)

KEY = "sk-termination-key-0004"
FIX = [{"type": "revise", "label": "Fix it", "params": {}}]
PARKED = {RunStatus.WAITING_APPROVAL}


@contextlib.asynccontextmanager
async def _run_to(
    tmp_path: Path,
    secret_key: str,
    team: Path,
    verifier: ScriptedVerifier,
    statuses: set[RunStatus],
    task: str = "Write it",
) -> AsyncIterator[tuple[Store, RunManager, Run]]:
    """UREQ's run of `team` (its key stored), once it has reached one of `statuses`."""
    settings = runner_settings(tmp_path, secret_key, team, "t.db")
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run_id = await start_run(runs, task)
        yield store, runs, await wait_for_status(store, run_id, statuses)


async def _spoken(store: Store, run_id: str, field: str = "content") -> list[str]:
    events = await store.runs.events(run_id)
    return [e.payload[field] for e in events if e.kind == ev.AGENT_MESSAGE]


async def test_a_cumulative_condition_ends_the_run_where_it_says(
    tmp_path: Path, secret_key: str
) -> None:
    """MaxMessageTermination(3) ends after three agent messages, not at MAX_TURNS (the
    runner's own task message is not counted)."""
    team = replay_team_file(
        tmp_path, ["w1", "w2", "w3"], ["r1", "r2", "r3"], MaxMessageTermination(3)
    )
    async with _run_to(
        tmp_path, secret_key, team, ScriptedVerifier([verdict()] * 10), FINISHED
    ) as (store, runs, run):
        assert run.status == RunStatus.COMPLETED and run.turns == 3
        assert await _spoken(store, run.id) == ["w1", "r1", "w2"]


async def test_the_count_carries_over_an_approval_pause(tmp_path: Path, secret_key: str) -> None:
    """A failing verdict parks the run (team dropped); after "continue" the rebuilt
    condition still knows two messages were spoken, so it ends after three more.
    (Replay clients rebuilt from JSON start their scripts again; the speakers' order
    comes from the saved team state.)"""
    team = replay_team_file(
        tmp_path, ["w1", "w2", "w3"], ["r1", "r2", "r3"], MaxMessageTermination(5)
    )
    verifier = ScriptedVerifier([verdict(), verdict("fail", "Too short.", FIX)] + [verdict()] * 8)
    async with _run_to(tmp_path, secret_key, team, verifier, PARKED) as (store, runs, parked):
        run = await choose(store, runs, parked.id, "continue")
        assert run.status == RunStatus.COMPLETED
        assert await _spoken(store, run.id, "source") == [
            "worker",
            "reviewer",
            "worker",
            "reviewer",
            "worker",
        ]


async def test_a_task_that_mentions_terminate_does_not_end_the_run(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["Explained."], ["Good. TERMINATE"])
    async with _run_to(
        tmp_path,
        secret_key,
        team,
        ScriptedVerifier([verdict()] * 4),
        FINISHED,
        task="Explain what TERMINATE does in AutoGen",
    ) as (store, runs, run):
        assert run.status == RunStatus.COMPLETED
        assert await _spoken(store, run.id) == ["Explained.", "Good. TERMINATE"]


async def test_continue_on_the_final_message_accepts_the_teams_end(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["Draft.", "Never said."], ["Fine. TERMINATE", "Again."])
    verifier = ScriptedVerifier([verdict(), verdict("fail", "Unsure.", FIX)] + [verdict()] * 4)
    async with _run_to(tmp_path, secret_key, team, verifier, PARKED) as (store, runs, parked):
        run = await choose(store, runs, parked.id, "continue")
        assert run.status == RunStatus.COMPLETED
        assert await _spoken(store, run.id) == ["Draft.", "Fine. TERMINATE"]


async def test_revise_on_the_final_message_runs_the_team_again(
    tmp_path: Path, secret_key: str
) -> None:
    team = replay_team_file(tmp_path, ["Draft."], ["Fine. TERMINATE"])
    verifier = ScriptedVerifier([verdict(), verdict("fail", "Unsure.", FIX)] + [verdict()] * 4)
    async with _run_to(tmp_path, secret_key, team, verifier, PARKED) as (store, runs, parked):
        run = await choose(store, runs, parked.id, "revise")
        assert run.status == RunStatus.COMPLETED
        # The reviewer, whose message was judged, answers the feedback and ends again.
        assert await _spoken(store, run.id) == ["Draft.", "Fine. TERMINATE", "Fine. TERMINATE"]


async def test_the_default_teams_condition_is_the_reviewers_terminate_only() -> None:
    config = json.loads(DEFAULT_TEAM_PATH.read_text())
    stripped, termination = split_termination(config)
    assert stripped["config"].get("termination_condition") is None
    assert termination.configured
    worker = TextMessage(source="worker", content="Done. TERMINATE")
    reviewer = TextMessage(source="reviewer", content="Looks good.")
    assert await termination.check([worker]) is None
    assert await termination.check([reviewer]) is None
    ending = TextMessage(source="reviewer", content="Approved.\nTERMINATE")
    assert await termination.check([ending]) is not None
    # It round-trips through component JSON with its sources (AutoGen's own would not).
    dumped = TextMentionFromTermination("DONE", ["a", "b"]).dump_component()
    loaded = TerminationCondition.load_component(dumped)
    assert await loaded([TextMessage(source="c", content="DONE")]) is None
    assert await loaded([TextMessage(source="b", content="DONE")]) is not None


async def test_a_team_without_a_condition_or_a_bad_one() -> None:
    _, none = split_termination({"component_type": "team", "config": {}})
    assert not none.configured and await none.check([TextMessage(source="a", content="x")]) is None
    bad = TextMentionTermination("X").dump_component().model_dump(mode="json")
    bad["provider"] = "not.a.module.Condition"
    try:
        split_termination({"component_type": "team", "config": {"termination_condition": bad}})
    except Exception as exc:
        assert type(exc).__name__ == "TeamConfigError" and "termination_condition" in str(exc)
    else:
        raise AssertionError("a condition that cannot load must be refused")


async def test_a_saved_state_that_no_longer_fits_the_team_ends_the_run_clearly(
    tmp_path: Path, secret_key: str
) -> None:
    """TEAM_CONFIG replaced by a different team while a run waited for approval."""
    team = replay_team_file(tmp_path, ["Draft."], ["Fine. TERMINATE"])
    verifier = ScriptedVerifier([verdict("fail", "Unsure.", FIX)] + [verdict()] * 4)
    async with _run_to(tmp_path, secret_key, team, verifier, PARKED) as (store, runs, parked):
        other = RoundRobinGroupChat(
            [AssistantAgent("writer", model_client=ReplayChatCompletionClient(["x"]))]
        )
        team.write_text(json.dumps(other.dump_component().model_dump(mode="json")))
        run = await choose(store, runs, parked.id, "continue")
        assert run.status == RunStatus.INTERRUPTED
        error = [e for e in await store.runs.events(run.id) if e.kind == ev.ERROR][-1]
        assert error.payload["code"] == "team_state"
