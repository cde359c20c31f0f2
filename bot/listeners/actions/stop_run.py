"""The Stop button on a run's root message."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import ids
from bot.listeners.answers import cancel_answer
from bot.listeners.ephemeral import tell
from bot.services import Services
from runner.manager import CancelOutcome


def register(app: AsyncApp, services: Services) -> None:
    @app.action(ids.STOP_RUN)
    async def stop_run_action(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        run_id = str(action.get("value", ""))
        outcome = await services.runs.cancel(run_id, user_id=body["user"]["id"])
        if outcome != CancelOutcome.CANCELLED:
            await tell(client, body, cancel_answer(outcome, run_id))
