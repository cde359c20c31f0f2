"""An approved "revise" goes to the agent whose message was judged."""

from __future__ import annotations

import json

from runner.decisions import revise_input
from runner.routing import with_next_speaker


def _state(manager: dict) -> str:
    agents = {name: {"type": "ChatAgentContainerState"} for name in ("planner", "worker")}
    return json.dumps({"type": "TeamState", "agent_states": {**agents, "Manager": manager}})


def test_round_robin_points_at_the_judged_agent() -> None:
    state = _state({"type": "RoundRobinManagerState", "next_speaker_index": 0})
    routed = json.loads(with_next_speaker(state, "worker") or "")
    assert routed["agent_states"]["Manager"]["next_speaker_index"] == 1


def test_swarm_hands_the_turn_to_the_judged_agent() -> None:
    state = _state({"type": "SwarmManagerState", "current_speaker": "planner"})
    routed = json.loads(with_next_speaker(state, "worker") or "")
    assert routed["agent_states"]["Manager"]["current_speaker"] == "worker"


def test_other_teams_unknown_agents_and_odd_state_are_left_alone() -> None:
    selector = _state({"type": "SelectorManagerState", "previous_speaker": "planner"})
    assert with_next_speaker(selector, "worker") == selector
    round_robin = _state({"type": "RoundRobinManagerState", "next_speaker_index": 0})
    assert with_next_speaker(round_robin, "stranger") == round_robin
    assert with_next_speaker("{not json", "worker") == "{not json"
    assert with_next_speaker(None, "worker") is None


def test_the_feedback_names_the_agent() -> None:
    assert "worker, please revise" in revise_input("2+2 is 4.", "worker")
    assert "Please revise your last answer" in revise_input("2+2 is 4.", "")
