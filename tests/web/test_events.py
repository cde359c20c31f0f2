"""The web API's view of a run's events: the original design's names and shapes, every
kind of the log covered, each event numbered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from store import events as ev
from store.records import RunEvent
from web.events import SHAPES, public_event

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ORIGINAL = {"agent_message", "verifier_result", "credential_request", "action_result", "info"}


def _event(kind: str, payload: dict[str, Any], seq: int = 7) -> RunEvent:
    return RunEvent(id=1, run_id="r1", seq=seq, kind=kind, payload=payload, created_at=WHEN)


def _log_kinds() -> set[str]:
    """Every event kind the store's log knows (its upper-case string constants)."""
    return {
        value
        for name, value in vars(ev).items()
        if name.isupper() and isinstance(value, str) and name != "EVENT"
    }


def test_every_kind_of_the_log_has_a_shape() -> None:
    assert _log_kinds() - set(SHAPES) == set()


def test_an_agent_message_in_the_original_shape() -> None:
    shown = public_event(
        _event(
            ev.AGENT_MESSAGE,
            {"source": "worker", "content": "Done.", "turn": 2, "message_type": "TextMessage"},
        )
    )
    assert shown == {
        "seq": 7,
        "type": "agent_message",
        "ts": WHEN.isoformat(),
        "sender": "worker",
        "recipient": "team",
        "content": "Done.",
        "turn": 2,
    }


@pytest.mark.parametrize(
    ("kind", "payload", "expected_type", "expected"),
    [
        (
            ev.VERIFIER_RESULT,
            {
                "agent_seq": 3,
                "source": "w",
                "verdict": "fail",
                "reason": "No.",
                "suggested_actions": [],
            },
            "verifier_result",
            {"verdict": "fail", "reason": "No.", "suggested_actions": [], "agent_seq": 3},
        ),
        (
            ev.CREDENTIAL_REQUEST,
            {
                "request_id": "q1",
                "user_id": "U1",
                "provider": "openrouter",
                "reason": "Need a key.",
            },
            "credential_request",
            {"provider": "openrouter", "description": "Need a key.", "request_id": "q1"},
        ),
        (
            ev.ACTION_RESULT,
            {
                "action_id": "a1",
                "offer_id": "o1",
                "type": "revise",
                "label": "Fix",
                "decided_by": "U1",
            },
            "action_result",
            {"action": "revise"},
        ),
        (ev.WARNING, {"text": "A server is down."}, "info", {"level": "warning"}),
        (ev.ERROR, {"code": "timeout", "text": "Too long."}, "error", {"text": "Too long."}),
        (
            ev.FINISHED,
            {"status": "completed", "outcome": "ok", "turns": 3, "cancelled_by": None},
            "finished",
            {"status": "completed", "turns": 3},
        ),
    ],
)
def test_each_kind_in_its_shape(
    kind: str, payload: dict[str, Any], expected_type: str, expected: dict[str, Any]
) -> None:
    shown = public_event(_event(kind, payload))
    assert shown["type"] == expected_type and shown["seq"] == 7
    assert expected.items() <= shown.items(), shown


def test_an_offer_shows_its_buttons_ids_so_a_client_can_decide() -> None:
    offered = public_event(
        _event(
            ev.ACTIONS_OFFERED,
            {
                "offer_id": "o1",
                "reason": "Too long.",
                "actions": [{"id": "a1", "type": "revise", "label": "Shorten", "params": {"x": 1}}],
            },
        )
    )
    assert offered["type"] == "actions_offered"
    assert offered["actions"] == [{"id": "a1", "type": "revise", "label": "Shorten"}]


def test_a_kind_this_view_does_not_know_keeps_its_number() -> None:
    shown = public_event(_event("from_the_future", {"x": 1}, seq=9))
    assert (shown["seq"], shown["type"], shown["kind"]) == (9, "info", "from_the_future")


def test_the_original_names_are_all_there() -> None:
    names = {SHAPES[kind](_payload_for(kind))[0] for kind in SHAPES}
    assert ORIGINAL | {"error", "finished"} <= names


def _payload_for(_kind: str) -> dict[str, Any]:
    return {}
