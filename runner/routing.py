"""Who speaks next after an approved "revise": the agent whose message was judged.

A team resumes from saved state, so without help the feedback would go to whoever is next
in the rotation (the reviewer, say, answering for the worker). For the teams whose state
names the next speaker, the saved state is pointed at the judged agent; other teams (a
selector, which picks by itself) get the agent's name in the feedback only.
"""

from __future__ import annotations

import json
from typing import Any


def with_next_speaker(team_state: str | None, agent: str) -> str | None:
    """`team_state` (JSON from `save_state`) with `agent` as the next speaker, where the team
    type allows it; unchanged otherwise."""
    if not team_state or not agent:
        return team_state
    try:
        state: dict[str, Any] = json.loads(team_state)
    except ValueError:
        return team_state
    agents = state.get("agent_states")
    if not isinstance(agents, dict):
        return team_state
    for manager in agents.values():
        if not isinstance(manager, dict):
            continue
        kind = manager.get("type")
        if kind == "RoundRobinManagerState":
            participants = [name for name, value in agents.items() if value is not manager]
            if agent not in participants:
                return team_state
            manager["next_speaker_index"] = participants.index(agent)
            return json.dumps(state)
        if kind == "SwarmManagerState" and agent in agents:
            manager["current_speaker"] = agent
            return json.dumps(state)
    return team_state
