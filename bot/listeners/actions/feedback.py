"""A click on a run summary's feedback buttons: kept once per person, answered privately."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.ephemeral import tell
from bot.services import services_of
from store.feedback import FeedbackOutcome

ANSWERS = {
    FeedbackOutcome.RECORDED: "Thanks, your feedback on this run is recorded.",
    FeedbackOutcome.ALREADY_GIVEN: "You already gave feedback on this run; the first one counts.",
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
