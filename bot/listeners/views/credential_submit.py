"""The credential modal's submission: validate, store encrypted, wake the run.

The value is read once from the payload and handed to the runner; it is never logged,
echoed in an error, or kept anywhere else.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext

from bot import ids
from bot.services import services_of
from bot.ui.credential_modal import PROBLEMS, check_secret, submitted_secret
from store.key_requests import FulfilOutcome

OUTCOMES = {
    FulfilOutcome.NOT_FOUND: "This key request no longer exists.",
    FulfilOutcome.WRONG_USER: "This key request is for someone else.",
    FulfilOutcome.ALREADY_RESOLVED: "This key request was already answered or closed.",
    FulfilOutcome.EXPIRED: "This key request expired; start the run again.",
}


async def credential_submit_view(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    secret = submitted_secret(view)
    problem = check_secret(secret)
    if problem is not None:
        await ack(response_action="errors", errors={ids.CREDENTIAL_INPUT_BLOCK: PROBLEMS[problem]})
        return
    result = await services_of(context).runs.keys.submit(
        str(view.get("private_metadata", "")), user_id=body["user"]["id"], secret=secret
    )
    if result.outcome == FulfilOutcome.STORED:
        await ack()
    else:
        await ack(
            response_action="errors", errors={ids.CREDENTIAL_INPUT_BLOCK: OUTCOMES[result.outcome]}
        )
