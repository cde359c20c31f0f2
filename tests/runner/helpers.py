"""Teams and verifiers scripted with AutoGen's ReplayChatCompletionClient, written as the
declarative component JSON the runner loads (teams are data, in tests too)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import TerminationCondition
from autogen_agentchat.conditions import TextMentionTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core.models import ChatCompletionClient, CreateResult, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from runner.manager import RunManager
from store import Store
from store import events as ev
from store.crypto import Owner
from store.records import FINISHED_STATUSES, Run, RunStatus
from store.settings import Settings, load_settings

FINISHED = set(FINISHED_STATUSES)
REPLAY_MODEL_INFO = {
    "vision": False,
    "function_calling": True,
    "json_output": False,
    "family": "unknown",
    "structured_output": False,
}


def runner_settings(
    tmp_path: Path, secret_key: str, team: Path, db_name: str = "r.db", **extra: Any
) -> Settings:
    """Settings for a runner test: its own SQLite file, the given team, any overrides."""
    return load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/{db_name}",
        server_secret_key=secret_key,
        team_config=str(team),
        **extra,
    )


def replay_team_file(
    folder: Path,
    worker: list[Any],
    reviewer: list[Any],
    termination: TerminationCondition | None = None,
) -> Path:
    """A two-agent round-robin team whose replies are scripted; ends on TERMINATE unless
    another `termination` is given."""
    team = RoundRobinGroupChat(
        [
            AssistantAgent(
                "worker",
                model_client=ReplayChatCompletionClient(worker, model_info=REPLAY_MODEL_INFO),
            ),
            AssistantAgent(
                "reviewer",
                model_client=ReplayChatCompletionClient(reviewer, model_info=REPLAY_MODEL_INFO),
            ),
        ],
        termination_condition=termination or TextMentionTermination("TERMINATE"),
    )
    path = folder / "team.json"
    path.write_text(json.dumps(team.dump_component().model_dump(mode="json")))
    return path


def verdict(
    kind: str = "pass", reason: str = "Looks right.", actions: list[dict] | None = None
) -> str:
    return json.dumps({"verdict": kind, "reason": reason, "suggested_actions": actions or []})


class ScriptedVerifier:
    """A verifier model client factory over one ReplayChatCompletionClient; records prompts."""

    def __init__(self, replies: list[str]) -> None:
        self.client = ReplayChatCompletionClient(
            [
                CreateResult(
                    finish_reason="stop",
                    content=r,
                    usage=RequestUsage(prompt_tokens=10, completion_tokens=5),
                    cached=False,
                )
                for r in replies
            ]
        )
        self.keys_seen: list[str] = []

    def __call__(self, api_key: str) -> ChatCompletionClient:
        self.keys_seen.append(api_key)
        return self.client


async def wait_for_status(
    store: Store, run_id: str, statuses: set[RunStatus], timeout: float = 15
) -> Run:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        run = await store.runs.get(run_id)
        assert run is not None
        if run.status in statuses:
            return run
        if asyncio.get_running_loop().time() > deadline:
            events = [(e.kind, e.payload) for e in await store.runs.events(run_id)]
            raise AssertionError(f"run stayed {run.status}; events: {events}")
        await asyncio.sleep(0.02)


def manager(
    store: Store, settings: Settings, verifier: ScriptedVerifier | None = None
) -> RunManager:
    return RunManager(
        store,
        settings,
        verifier_client_factory=verifier or ScriptedVerifier([verdict()] * 50),
        poll_interval_s=0.05,
    )


async def put_requester_key(store: Store, key: str) -> None:
    """Store `key` as UREQ's LLM key in workspace T1, as UREQ would."""
    await store.credentials.put(Owner("T1", "UREQ", "openrouter"), key, actor_id="UREQ")


@contextlib.asynccontextmanager
async def running_manager(
    settings: Settings,
    verifier: ScriptedVerifier | None = None,
    *,
    key: str | None = None,
    start: bool = True,
) -> AsyncIterator[tuple[Store, RunManager]]:
    """The store and a RunManager over it (see `manager`), with UREQ's `key` stored when one
    is given, started unless `start` is False; always stopped and the store closed after."""
    store = await Store.open(settings)
    try:
        if key is not None:
            await put_requester_key(store, key)
        runs = manager(store, settings, verifier)
        if start:
            await runs.start()
        try:
            yield store, runs
        finally:
            await runs.stop()
    finally:
        await store.close()


async def start_run(runs: RunManager, task: str = "t") -> str:
    """UREQ's run of `task` in channel C1 of workspace T1; its id."""
    started = await runs.start_run(
        workspace_id="T1", channel_id="C1", requester_id="UREQ", task=task
    )
    return started.run.id


async def choose(
    store: Store,
    runs: RunManager,
    run_id: str,
    action_type: str,
    until: set[RunStatus] = FINISHED,
) -> Run:
    """The requester picks one of the offered actions; the run as it is once it reaches
    one of `until` (by default: finished)."""
    await runs.decide((await offered_actions(store, run_id))[action_type], user_id="UREQ")
    return await wait_for_status(store, run_id, until)


async def offered_actions(store: Store, run_id: str) -> dict[str, str]:
    """The actions of the run's last actions_offered event, as {type: id}."""
    offered = [e for e in await store.runs.events(run_id) if e.kind == ev.ACTIONS_OFFERED]
    return {a["type"]: a["id"] for a in offered[-1].payload["actions"]}
