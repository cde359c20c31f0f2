"""Run event kinds and their payloads: the contract between the runner and any front end.

Payloads are plain JSON objects so the Slack publisher (and a later web front end) can render
them without importing AutoGen. Field names are listed per kind below.
"""

from __future__ import annotations

from typing import Final

RUN_STARTED: Final = "run_started"  # task, requester_id, queued_ahead
AGENT_MESSAGE: Final = "agent_message"  # source, content, turn, message_type, ends_team?
VERIFIER_RESULT: Final = "verifier_result"  # agent_seq, source, verdict, reason, suggested_actions
CREDENTIAL_REQUEST: Final = "credential_request"  # request_id, user_id, provider, reason,
#                                                   expires_at, rejected
CREDENTIAL_RECEIVED: Final = "credential_received"  # request_id, provider, user_id
ACTIONS_OFFERED: Final = "actions_offered"  # offer_id, actions[{id,type,label,params}], reason
ACTION_RESULT: Final = "action_result"  # action_id, offer_id, type, label, decided_by, auto
INFO: Final = "info"  # text
ERROR: Final = "error"  # text, code
FINISHED: Final = "finished"  # status, outcome, turns, prompt_tokens, completion_tokens,
#                              duration_s, working_s, cancelled_by
