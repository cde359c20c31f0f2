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
from pathlib import Path
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import Team
from autogen_core.tools import BaseTool, StaticWorkbench

from store.settings import Settings

DEFAULT_TEAM_PATH = Path(__file__).parent / "teams" / "default.json"
MODEL_PLACEHOLDER = "${LLM_MODEL}"
OPENAI_CLIENT = "autogen_ext.models.openai.OpenAIChatCompletionClient"
TURN_BOUNDARY_REASON = "Maximum number of turns 1 reached."
UNSUPPORTED_TEAMS = ("MagenticOneGroupChat",)
GENERIC_MODEL_INFO: dict[str, Any] = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "family": "unknown",
    "structured_output": True,
}


class TeamConfigError(Exception):
    """The team JSON cannot be read or loaded; the message names the file, not secrets."""


def read_team_config(settings: Settings) -> dict[str, Any]:
    path = settings.team_config or DEFAULT_TEAM_PATH
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TeamConfigError(f"TEAM_CONFIG {path} could not be read: {exc}") from None
    if not isinstance(data, dict) or data.get("component_type") != "team":
        raise TeamConfigError(f"TEAM_CONFIG {path} is not an AutoGen team component")
    if str(data.get("provider", "")).endswith(UNSUPPORTED_TEAMS):
        raise TeamConfigError(
            f"TEAM_CONFIG {path}: MagenticOne teams are not supported (its orchestrator "
            "counts turns its own way, so the app cannot pause it after each message); "
            "use RoundRobinGroupChat, SelectorGroupChat or Swarm"
        )
    return data


def _known_model(model: str) -> bool:
    from autogen_ext.models.openai._model_info import get_info

    try:
        get_info(model)
    except (KeyError, ValueError):
        return False
    return True


def configure_model_clients(
    node: Any, *, settings: Settings, api_key: str, model: str | None = None
) -> None:
    """Fill every OpenAI client config in place (the caller passes a private copy)."""
    if isinstance(node, list):
        for child in node:
            configure_model_clients(child, settings=settings, api_key=api_key, model=model)
        return
    if not isinstance(node, dict):
        return
    if node.get("provider") == OPENAI_CLIENT and isinstance(node.get("config"), dict):
        config = node["config"]
        if config.get("model") in (None, "", MODEL_PLACEHOLDER):
            config["model"] = model or settings.llm_model
        config.setdefault("base_url", settings.llm_base_url)
        config["api_key"] = api_key
        config.setdefault("max_retries", settings.llm_max_retries)
        if settings.llm_model_info is not None:
            config["model_info"] = settings.llm_model_info
        elif "model_info" not in config and not _known_model(config["model"]):
            config["model_info"] = GENERIC_MODEL_INFO
    for child in node.values():
        configure_model_clients(child, settings=settings, api_key=api_key, model=model)


def build_team(
    config: dict[str, Any],
    *,
    settings: Settings,
    api_key: str,
    tools: list[BaseTool[Any, Any]] | None = None,
) -> Team:
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
    for agent in _participants(team):
        _attach_tools(agent, tools or [])
    return team


async def check_team_config(settings: Settings) -> None:
    """Load TEAM_CONFIG once at start-up (with a placeholder key), so a broken file stops
    the app with one line instead of failing every run later."""
    from runner.termination import split_termination

    config, _ = split_termination(read_team_config(settings))
    team = build_team(config, settings=settings, api_key="startup-check")
    await close_team(team)


async def close_team(team: Team) -> None:
    """Close the model clients the team built (their HTTP connections), once it is dropped."""
    clients = [getattr(agent, "_model_client", None) for agent in _participants(team)]
    clients.append(getattr(team, "_model_client", None))  # SelectorGroupChat's own
    for client in {id(c): c for c in clients if c is not None}.values():
        try:
            await client.close()
        except Exception:  # noqa: BLE001, S110 - closing is best effort
            pass


def _participants(team: Team) -> list[Any]:
    return list(getattr(team, "_participants", []))


def _attach_tools(agent: Any, tools: list[BaseTool[Any, Any]]) -> None:
    """Give assistant agents that can call functions the runner's own tools.

    AssistantAgent keeps a list of workbenches; a further StaticWorkbench adds tools without
    touching the ones the JSON declared. Agents whose model cannot call functions are left as
    they are (AutoGen would refuse to build them with tools).
    """
    if not tools or not isinstance(agent, AssistantAgent):
        return
    model_info = agent._model_client.model_info  # noqa: SLF001 - no public accessor in 0.7
    if not model_info.get("function_calling"):
        return
    existing = list(agent._workbench or [])  # noqa: SLF001
    agent._workbench = [*existing, StaticWorkbench(tools)]  # noqa: SLF001
