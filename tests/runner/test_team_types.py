"""TEAM_CONFIG may hold a SelectorGroupChat or a Swarm, not only a round robin: each runs
one agent turn at a time, pauses for a failing verdict and resumes from saved state."""

from __future__ import annotations

import json
from pathlib import Path

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import Team
from autogen_agentchat.conditions import TextMentionTermination
from autogen_agentchat.teams import SelectorGroupChat, Swarm
from autogen_ext.models.replay import ReplayChatCompletionClient

from store import events as ev
from store.records import RunStatus
from tests.runner.helpers import (
    REPLAY_MODEL_INFO,
    ScriptedVerifier,
    choose,
    runner_settings,
    running_manager,
    start_run,
    verdict,
    wait_for_status,
)

KEY = "sk-team-types-key-0007"
FIX = [{"type": "revise", "label": "Fix it", "params": {}}]


def _agent(name: str, replies: list[str], **kwargs: object) -> AssistantAgent:
    client = ReplayChatCompletionClient(replies, model_info=REPLAY_MODEL_INFO)
    return AssistantAgent(name, model_client=client, **kwargs)


def _write(folder: Path, team: Team) -> Path:
    path = folder / "team.json"
    path.write_text(json.dumps(team.dump_component().model_dump(mode="json")))
    return path


async def _speakers_after_a_revise(tmp_path: Path, secret_key: str, team: Path) -> list[str]:
    """Run the team; the first message fails the verifier; revise; return who spoke."""
    settings = runner_settings(tmp_path, secret_key, team)
    verifier = ScriptedVerifier([verdict("fail", "Not yet.", FIX)] + [verdict()] * 10)
    async with running_manager(settings, verifier, key=KEY) as (store, runs):
        run_id = await start_run(runs, "Write a line")
        parked = await wait_for_status(store, run_id, {RunStatus.WAITING_APPROVAL})
        run = await choose(store, runs, parked.id, "revise")
        assert run.status == RunStatus.COMPLETED, run.outcome
        events = await store.runs.events(run_id)
        return [e.payload["source"] for e in events if e.kind == ev.AGENT_MESSAGE]


async def test_a_selector_team_pauses_and_resumes(tmp_path: Path, secret_key: str) -> None:
    # Replay scripts start again when the team is rebuilt after the pause: the selector
    # picks the worker again, then the reviewer.
    selector = ReplayChatCompletionClient(["worker", "reviewer"], model_info=REPLAY_MODEL_INFO)
    team = SelectorGroupChat(
        [_agent("worker", ["A line."]), _agent("reviewer", ["Good. TERMINATE"])],
        model_client=selector,
        termination_condition=TextMentionTermination("TERMINATE"),
        allow_repeated_speaker=True,
    )
    speakers = await _speakers_after_a_revise(tmp_path, secret_key, _write(tmp_path, team))
    assert speakers == ["worker", "worker", "reviewer"]


async def test_a_swarm_team_pauses_and_resumes(tmp_path: Path, secret_key: str) -> None:
    """In a swarm the speaker changes only by handoff: after the revise, the judged agent
    (the one whose turn it still is) answers, and its TERMINATE ends the run."""
    team = Swarm(
        [_agent("worker", ["Draft. TERMINATE"], handoffs=["reviewer"]), _agent("reviewer", [])],
        termination_condition=TextMentionTermination("TERMINATE"),
    )
    speakers = await _speakers_after_a_revise(tmp_path, secret_key, _write(tmp_path, team))
    assert speakers == ["worker", "worker"]
