"""The team's own termination condition, kept by the runner across turns.

The runner drives a team one turn per `run_stream` call (`max_turns=1`), and AutoGen resets
a team's termination condition whenever `max_turns` is reached. A cumulative condition in a
user's team JSON (`MaxMessageTermination(10)`, `TokenUsageTermination`, or an `Or` of one
with `TextMentionTermination`) would therefore never fire. So the runner takes the condition
out of the team and evaluates it itself on each turn's agent messages and events.

Unlike AutoGen, the runner's own inputs (the task, approved feedback, resume notes, all
from "user") are not fed to the condition: a task that mentions TERMINATE must not end the
run before anyone has spoken.

After a pause the team is rebuilt from saved state; the condition is rebuilt from the JSON
and replayed over the saved message thread, resetting wherever it fired (as AutoGen does),
so counts carry over a wait, a restart or another replica. Time-based conditions restart at
each resume; RUN_TIMEOUT_S bounds a run's time instead.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from autogen_agentchat.base import TerminationCondition
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage, MessageFactory

from runner.team_config import TeamConfigError

log = logging.getLogger(__name__)

Item = BaseAgentEvent | BaseChatMessage
USER = "user"  # the source AutoGen gives task messages


class TeamTermination:
    """One run's view of its team's termination condition (None: the team has none)."""

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        try:
            self._condition = TerminationCondition.load_component(dict(config)) if config else None
        except Exception as exc:
            raise TeamConfigError(
                f"the team's termination_condition could not be loaded ({type(exc).__name__})"
            ) from None

    @property
    def configured(self) -> bool:
        return self._condition is not None

    async def check(self, delta: Sequence[Item]) -> str | None:
        """Feed one turn's items; the stop reason when the team's condition is met."""
        if self._condition is None or not delta:
            return None
        stop = await self._condition(list(delta))
        if stop is None:
            return None
        await self._condition.reset()
        return stop.content

    async def replay(self, team_state: Mapping[str, Any]) -> None:
        """Bring a fresh condition up to date with the conversation so far."""
        if self._condition is None:
            return
        for item in _saved_thread(team_state):
            if item.source != USER:
                await self.check([item])


def split_termination(team_config: Mapping[str, Any]) -> tuple[dict[str, Any], TeamTermination]:
    """The team JSON without its termination condition, and that condition for the runner."""
    config = copy.deepcopy(dict(team_config))
    inner = config.setdefault("config", {})
    condition = inner.pop("termination_condition", None)
    return config, TeamTermination(condition)


def _saved_thread(team_state: Mapping[str, Any]) -> Iterable[Item]:
    """The group chat manager's message thread from `team.save_state()`, as messages.

    Message types the team registered itself (custom types) are skipped: the condition
    cannot have been written against types this process does not know."""
    factory = MessageFactory()
    for agent_state in (team_state.get("agent_states") or {}).values():
        if not isinstance(agent_state, Mapping) or "message_thread" not in agent_state:
            continue
        for dumped in agent_state.get("message_thread") or []:
            try:
                yield factory.create(dumped)
            except (ValueError, TypeError, KeyError):
                log.info("skipped a message of an unknown type while replaying termination")
        return
