"""Every action_id, block_id and callback_id the app uses, in one place."""

from __future__ import annotations

import re

STOP_RUN = "run_stop"
CREDENTIAL_OPEN = "credential_open"
CREDENTIAL_DELETE = "credential_delete"
CREDENTIAL_MODAL = "credential_modal"
CREDENTIAL_INPUT_BLOCK = "credential_value"
CREDENTIAL_INPUT = "credential_input"
APPROVE_PREFIX = "approve:"
APPROVE_PATTERN = re.compile(r"^approve:\d+$")
ACTIONS_BLOCK = "run_actions"
TOOL_DENY = "tool_deny"
RUN_FEEDBACK = "run_feedback"
FEEDBACK_BLOCK = "run_feedback_block"
CREDENTIAL_ADD = "credential_add"
CREDENTIAL_ADD_MODAL = "credential_add_modal"
CREDENTIAL_PROVIDER_BLOCK = "credential_provider"
CREDENTIAL_PROVIDER_INPUT = "credential_provider_input"
TOOL_DENY_MODAL = "tool_deny_modal"
TOOL_DENY_REASON_BLOCK = "deny_reason"
TOOL_DENY_REASON_INPUT = "deny_reason_input"
COMMAND = "/autogen"
EVENTS = frozenset({"app_mention", "app_home_opened", "message"})  # the events a listener answers


def handles_action(action_id: str) -> bool:
    """Whether a listener is registered for a button with this action_id."""
    named = (STOP_RUN, CREDENTIAL_OPEN, CREDENTIAL_DELETE, CREDENTIAL_ADD, TOOL_DENY, RUN_FEEDBACK)
    return action_id in named or bool(APPROVE_PATTERN.match(action_id))


def handles_view(callback_id: str) -> bool:
    """Whether a listener is registered for the submission of this view."""
    return callback_id in (CREDENTIAL_MODAL, TOOL_DENY_MODAL, CREDENTIAL_ADD_MODAL)


def handles_event(event_type: str) -> bool:
    """Whether a listener is registered for this Events API event type."""
    return event_type in EVENTS
