"""Build an AutoGen team from declarative component JSON, with the API key injected.

Teams are data (what `team.dump_component()` writes and AutoGen Studio exports). At run time
every OpenAI model client in the JSON gets the key from the credential store, the base URL
and model from settings where the JSON leaves them open, and `model_info` for model names
the client does not know. The key lives only in the in-memory config of this one team; the
file on disk, `dump_component()` (it masks `api_key`) and `save_state()` never hold it.

The team is loaded with `max_turns=1`: every `run_stream` call is one agent turn, so the
runner gets a consistent `save_state()` and a pause point after every message (AutoGen
warns that state saved while a team runs may be inconsistent). AutoGen resets a team's
termination condition at every such boundary, so the runner takes the condition out and
evaluates it across turns itself (`runner.termination`); MAX_TURNS bounds every run.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import Team
from autogen_ext.models.openai import BaseOpenAIChatCompletionClient

from runner.identities import team_identities
from runner.model_info import model_info_for
from runner.team_config import TeamConfigError, read_team_config
from runner.termination import TeamTermination, split_termination
from store.settings import Settings

MODEL_PLACEHOLDER = "${LLM_MODEL}"
OPENAI_CLIENT = "autogen_ext.models.openai.OpenAIChatCompletionClient"
POOLED_CLIENT = "runner.openai_pool.PooledOpenAIChatCompletionClient"
TURN_BOUNDARY_REASON = "Maximum number of turns 1 reached."
STARTUP_CHECK_KEY = "startup-check"


def configure_model_clients(node: Any, *, settings: Settings, api_key: str) -> None:
    """Fill every OpenAI client config in place (the caller passes a private copy)."""
    if isinstance(node, list):
        for child in node:
            configure_model_clients(child, settings=settings, api_key=api_key)
        return
    if not isinstance(node, dict):
        return
    if node.get("provider") == OPENAI_CLIENT and isinstance(node.get("config"), dict):
        config = node["config"]
        if config.get("model") in (None, "", MODEL_PLACEHOLDER):
            config["model"] = settings.llm_model
        config.setdefault("base_url", settings.llm_base_url)
        config["api_key"] = api_key
        config.setdefault("max_retries", settings.llm_max_retries)
        node["provider"] = POOLED_CLIENT  # the same client, on the process's shared pool
        if settings.llm_model_info is not None or "model_info" not in config:
            model_info = model_info_for(config["model"], settings)
            if model_info is not None:
                config["model_info"] = model_info
    for child in node.values():
        configure_model_clients(child, settings=settings, api_key=api_key)


@dataclass
class LoadedTeam:
    """A team built for one claim of a run, and the termination condition the runner keeps
    for it across turns. Close it when the run parks or ends."""

    team: Team
    termination: TeamTermination
    identities: dict[str, dict[str, str]] = field(default_factory=dict)  # by agent name
    streaming: frozenset[str] = frozenset()  # agents whose model calls stream (STREAMING)

    async def restore(self, team_state: str) -> None:
        """Continue from a saved state: the team's, and the condition's count so far."""
        state = json.loads(team_state)
        await self.team.load_state(state)
        await self.termination.replay(state)

    async def close(self) -> None:
        """Close the model clients the team built (their HTTP connections)."""
        clients = [getattr(agent, "_model_client", None) for agent in _participants(self.team)]
        clients.append(getattr(self.team, "_model_client", None))  # SelectorGroupChat's own
        for client in {id(c): c for c in clients if c is not None}.values():
            try:
                await client.close()
            except Exception:  # noqa: S110 - closing is best effort
                pass


def load_team(settings: Settings, *, api_key: str, path: Path | None = None) -> LoadedTeam:
    """The team at `path` (a named team), else TEAM_CONFIG (or the default team), built
    with `api_key`; the claim's toolkit gives its agents their tools afterwards."""
    config, termination = split_termination(read_team_config(settings, path))
    prepared = copy.deepcopy(config)
    configure_model_clients(prepared, settings=settings, api_key=api_key)
    prepared.setdefault("config", {})["max_turns"] = 1
    try:
        team = Team.load_component(prepared)
    except Exception as exc:
        # Never echo the config: it now holds the key.
        raise TeamConfigError(
            f"the team configuration could not be loaded ({type(exc).__name__})"
        ) from None
    participants = _participants(team)
    streaming = stream_replies(participants) if settings.streaming else frozenset()
    return LoadedTeam(team, termination, team_identities(participants), streaming)


def stream_replies(participants: list[Any]) -> frozenset[str]:
    """Have each assistant agent stream its model calls, so its reply can be shown while it
    is written; the names of those agents. OpenAI clients are asked for the usage on the
    stream's last chunk, which RUN_TOKEN_BUDGET counts (a stream leaves it out otherwise)."""
    names = set()
    for agent in participants:
        if not isinstance(agent, AssistantAgent):
            continue
        agent._model_client_stream = True  # no public setter in AutoGen 0.7
        client = getattr(agent, "_model_client", None)
        if isinstance(client, BaseOpenAIChatCompletionClient):
            client._create_args.setdefault("stream_options", {"include_usage": True})
        names.add(agent.name)
    return frozenset(names)


async def check_team_config(settings: Settings) -> None:
    """Load TEAM_CONFIG once at start-up (with a placeholder key), and read MCP_CONFIG and
    PROVIDERS_FILE, so a broken file stops the app with one line instead of failing every
    run later."""
    from runner.mcp_servers import read_mcp_config  # they import this module's neighbours
    from runner.providers import ProviderTable
    from runner.team_catalog import TeamCatalog

    await load_team(settings, api_key=STARTUP_CHECK_KEY).close()
    for entry in TeamCatalog.from_settings(settings).named:
        await load_team(settings, api_key=STARTUP_CHECK_KEY, path=entry.path).close()
    read_mcp_config(settings)
    ProviderTable.from_settings(settings)


def _participants(team: Team) -> list[Any]:
    return list(getattr(team, "_participants", []))  # no public accessor in AutoGen 0.7
