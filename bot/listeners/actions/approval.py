"""A click on one of the verifier's suggested actions: decided once, by whom may."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.ephemeral import tell
from bot.services import services_of
from store.actions import DecisionOutcome

ANSWERS = {
    DecisionOutcome.NOT_AUTHORISED: (
        "Only the person who started this run or an approver can decide."
    ),
    DecisionOutcome.ALREADY_DECIDED: "This was already decided.",
    DecisionOutcome.RUN_NOT_WAITING: "This run is no longer waiting for a decision.",
    DecisionOutcome.NOT_FOUND: "I can't find that choice any more.",
}


async def approve_action(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    runs = services_of(context).runs
    decision = await runs.decide(str(action.get("value", "")), user_id=body["user"]["id"])
    if decision.outcome != DecisionOutcome.APPROVED:
        await tell(client, body, ANSWERS[decision.outcome])
