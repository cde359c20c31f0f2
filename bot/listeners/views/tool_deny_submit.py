"""The deny modal's submission: deny the held call once, with the person's reason."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext

from bot import ids
from bot.listeners.actions.approval import ANSWERS
from bot.listeners.actions.tool_deny import DENY
from bot.services import services_of
from store.actions import Decision, DecisionOutcome


async def tool_deny_submit_view(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    values = (view.get("state") or {}).get("values") or {}
    field = (values.get(ids.TOOL_DENY_REASON_BLOCK) or {}).get(ids.TOOL_DENY_REASON_INPUT) or {}
    reason = field.get("value") if isinstance(field.get("value"), str) else None
    runs, action_id, user_id = (
        services_of(context).runs,
        str(view.get("private_metadata", "")),
        body["user"]["id"],
    )
    check = await runs.may_decide(action_id, user_id=user_id)
    if check.action is None or check.action.type != DENY:  # this form denies a tool call only
        decision = Decision(DecisionOutcome.NOT_FOUND)
    else:
        decision = await runs.decide(action_id, user_id=user_id, note=reason)
    if decision.outcome == DecisionOutcome.APPROVED:
        await ack()
    else:
        await ack(
            response_action="errors", errors={ids.TOOL_DENY_REASON_BLOCK: ANSWERS[decision.outcome]}
        )
