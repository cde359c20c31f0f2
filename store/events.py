"""The run event log's vocabulary: kinds and their payloads, shared by every writer and reader.

The log lives in the store, so its kinds do too: the runner appends most of them, the store
itself writes the ones it creates with a row (a key request, a key received, offered
buttons), and front ends (the Slack publisher, later a web API) render them. Payloads are
plain JSON objects; field names are listed per kind below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

RUN_STARTED: Final = "run_started"  # task, requester_id, queued_ahead
AGENT_MESSAGE: Final = "agent_message"  # source, content, turn, message_type, ends_team?,
#                                          tool_calls?[{tool, arguments, outcome, size, detail?}],
#                                          identity? {name, icon_emoji | icon_url}
VERIFIER_RESULT: Final = "verifier_result"  # agent_seq, source, verdict, reason, suggested_actions
CREDENTIAL_REQUEST: Final = "credential_request"  # request_id, user_id, provider, reason,
#                                                   expires_at, rejected
CREDENTIAL_RECEIVED: Final = "credential_received"  # request_id, provider, user_id
ACTIONS_OFFERED: Final = "actions_offered"  # offer_id, actions[{id,type,label,params}], reason,
#                                              tool_call? {agent, tool, arguments, call_id}
ACTION_RESULT: Final = "action_result"  # action_id, offer_id, type, label, decided_by, auto,
#                                         tool_call?, note?
TOOL_CALL_STARTED: Final = "tool_call_started"  # action_id, tool, arguments, decided_by
TOOL_RESULT: Final = "tool_result"  # action_id, started_seq?, tool, arguments, outcome, size,
#                                     detail?, decided_by
HUMAN_REPLY: Final = "human_reply"  # user_id, text (a reply in the run's thread, for the team)
RUN_CONTINUED: Final = "run_continued"  # user_id, text, turns, active_s, tokens (the totals
#                                         when a finished run was continued by a reply)
INFO: Final = "info"  # text
WARNING: Final = "warning"  # text (a tool or server that is not available, say)
ERROR: Final = "error"  # text, code
FINISHED: Final = "finished"  # status, outcome, turns, prompt_tokens, completion_tokens,
#                              duration_s, working_s, cancelled_by


@dataclass(frozen=True)
class NewEvent:
    """An event to append; the store gives it the run's next sequence number."""

    kind: str
    payload: dict[str, Any]
