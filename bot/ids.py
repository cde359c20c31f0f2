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
