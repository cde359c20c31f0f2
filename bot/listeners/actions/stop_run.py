"""The Stop button on a run's root message."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.answers import cancel_answer
from bot.listeners.ephemeral import tell
from bot.services import services_of
from runner.manager import CancelOutcome


async def stop_run_action(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    run_id = str(action.get("value", ""))
    outcome = await services_of(context).runs.cancel(run_id, user_id=body["user"]["id"])
    if outcome != CancelOutcome.CANCELLED:
        await tell(client, body, cancel_answer(outcome, run_id))
