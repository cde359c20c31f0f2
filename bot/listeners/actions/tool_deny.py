"""The Deny button of a held tool call: ask why in a small modal, if the person may decide.

Who may decide is checked before the modal opens, so someone who may not is told at once
instead of after typing a reason; the decision itself is taken when the modal is submitted.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncBoltContext
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.actions.approval import ANSWERS
from bot.listeners.ephemeral import tell
from bot.services import services_of
from bot.ui.deny_modal import deny_reason_modal
from store.actions import Decision, DecisionOutcome

DENY = "deny_tool"

log = logging.getLogger(__name__)


async def tool_deny_action(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services = services_of(context)
    action_id = str(action.get("value", ""))
    check = await services.runs.may_decide(action_id, user_id=body["user"]["id"])
    if check.outcome == DecisionOutcome.APPROVED and (
        check.action is None or check.action.type != DENY
    ):
        check = Decision(DecisionOutcome.NOT_FOUND)  # only a tool call's Deny opens this form
    if check.outcome != DecisionOutcome.APPROVED or check.action is None:
        await tell(client, body, ANSWERS[check.outcome])
        return
    view = deny_reason_modal(action_id=action_id, tool=str(check.action.params.get("tool", "")))
    try:  # the trigger is valid for 3 s and once: one try
        await services.trigger_client.views_open(trigger_id=body["trigger_id"], view=view)
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("deny form not opened (%s)", type(exc).__name__)
        await tell(client, body, "Slack didn't open the form. Click Deny again.")
