"""Feedback on a run: once per person, whatever the number of clicks or replicas."""

from __future__ import annotations

import asyncio

from store import Store
from store.feedback import FeedbackOutcome
from tests.db import audit_actions


async def test_one_rating_per_person_even_all_at_once(store: Store) -> None:
    run, _ = await store.runs.create(
        workspace_id="T1", channel_id="C1", requester_id="U1", task="t"
    )
    clicks = [store.feedback.record(run.id, user_id="U2", rating="good") for _ in range(6)]
    outcomes = await asyncio.gather(*clicks)
    assert sorted(outcomes) == sorted(
        [FeedbackOutcome.RECORDED] + [FeedbackOutcome.ALREADY_GIVEN] * 5
    )
    u3 = await store.feedback.record(run.id, user_id="U3", rating="bad")
    assert u3 == FeedbackOutcome.RECORDED
    assert await store.feedback.tally(run.id) == {"good": 1, "bad": 1}
    # Switching, as Slack's buttons let a person do: still one rating each.
    switched = await store.feedback.record(run.id, user_id="U2", rating="bad")
    again = await store.feedback.record(run.id, user_id="U2", rating="bad")
    assert (switched, again) == (FeedbackOutcome.CHANGED, FeedbackOutcome.ALREADY_GIVEN)
    assert await store.feedback.tally(run.id) == {"good": 0, "bad": 2}
    assert (await audit_actions(store, "T1")).count("run_feedback") == 3


async def test_feedback_on_nothing_is_refused(store: Store) -> None:
    run, _ = await store.runs.create(
        workspace_id="T1", channel_id="C1", requester_id="U1", task="t"
    )
    assert (
        await store.feedback.record("0" * 32, user_id="U2", rating="good")
        == FeedbackOutcome.NOT_FOUND
    )
    assert (
        await store.feedback.record(run.id, user_id="U2", rating="meh") == FeedbackOutcome.NOT_FOUND
    )
    assert await store.feedback.tally(run.id) == {"good": 0, "bad": 0}
