"""A click on a run summary's feedback buttons: one rating per person (the latest click, as
Slack's buttons show it), answered privately."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.ephemeral import tell
from bot.services import services_of
from store.feedback import FeedbackOutcome

ANSWERS = {
    FeedbackOutcome.RECORDED: "Thanks, your feedback on this run is recorded.",
    FeedbackOutcome.CHANGED: "Thanks, your feedback on this run is changed.",
    FeedbackOutcome.ALREADY_GIVEN: "Your feedback on this run is already recorded.",
    FeedbackOutcome.NOT_FOUND: "I can't find that run any more.",
}


async def feedback_action(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    runs = services_of(context).runs
    outcome = await runs.feedback(str(action.get("value", "")), user_id=body["user"]["id"])
    await tell(client, body, ANSWERS[outcome])
