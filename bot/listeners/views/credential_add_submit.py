"""The add-a-key form's submission: check, store encrypted for the person (a run of theirs
waiting for that key resumes, as from the API), refresh Home."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot import ids
from bot.listeners.home import publish_home
from bot.services import services_of, team_of
from bot.ui.credential_modal import PROBLEMS, check_secret, submitted_provider, submitted_secret


async def credential_add_submit_view(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    services = services_of(context)
    provider = submitted_provider(view)
    if provider not in services.runs.providers.names:
        await ack(
            response_action="errors", errors={ids.CREDENTIAL_PROVIDER_BLOCK: "Choose a provider."}
        )
        return
    secret = submitted_secret(view)
    problem = check_secret(secret)
    if problem is not None:
        await ack(response_action="errors", errors={ids.CREDENTIAL_INPUT_BLOCK: PROBLEMS[problem]})
        return
    team_id, user_id = team_of(body), body["user"]["id"]
    await services.runs.keys.supply(
        workspace_id=team_id, user_id=user_id, provider=provider, secret=secret
    )
    await ack()
    await publish_home(services, client, team_id=team_id, user_id=user_id)
