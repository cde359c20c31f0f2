"""The credential modal's submission: validate, store encrypted, wake the run.

The value is read once from the payload and handed to the runner; it is never logged,
echoed in an error, or kept anywhere else.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import ids
from bot.services import Services
from runner.key_input import MAX_SECRET_CHARS, MIN_SECRET_CHARS, SecretProblem, check_secret
from store.credentials import FulfilOutcome

PROBLEMS = {
    SecretProblem.EMPTY: "Paste the key here.",
    SecretProblem.WHITESPACE: "A key has no spaces or line breaks: check what was pasted.",
    SecretProblem.TOO_SHORT: f"That is too short for an API key ({MIN_SECRET_CHARS}+ characters).",
    SecretProblem.TOO_LONG: f"That is too long for an API key (at most {MAX_SECRET_CHARS}).",
}
OUTCOMES = {
    FulfilOutcome.NOT_FOUND: "This key request no longer exists.",
    FulfilOutcome.WRONG_USER: "This key request is for someone else.",
    FulfilOutcome.ALREADY_RESOLVED: "This key request was already answered or closed.",
    FulfilOutcome.EXPIRED: "This key request expired; start the run again.",
}


def register(app: AsyncApp, services: Services) -> None:
    @app.view(ids.CREDENTIAL_MODAL)
    async def credential_submit_view(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        values = view.get("state", {}).get("values", {})
        secret = (
            values.get(ids.CREDENTIAL_INPUT_BLOCK, {}).get(ids.CREDENTIAL_INPUT, {}).get("value")
            or ""
        ).strip()
        problem = check_secret(secret)
        if problem is not None:
            await ack(
                response_action="errors", errors={ids.CREDENTIAL_INPUT_BLOCK: PROBLEMS[problem]}
            )
            return
        result = await services.runs.submit_credential(
            str(view.get("private_metadata", "")), user_id=body["user"]["id"], secret=secret
        )
        if result.outcome == FulfilOutcome.STORED:
            await ack()
        else:
            await ack(
                response_action="errors",
                errors={ids.CREDENTIAL_INPUT_BLOCK: OUTCOMES[result.outcome]},
            )
