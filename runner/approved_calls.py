"""Running a tool call a person approved: exactly once, by the runner, with exactly the
arguments that were approved.

The agent asked for the call in an earlier turn and was told it waits for a decision. Once
approved, the next claim of the run makes the call itself (the agent is not asked to repeat
it, so it cannot change it), then tells the agent what it returned. A `tool_call_started`
event is written before the call and a `tool_result` after it, with the agent's next
input: a process that dies in between does not make the call again on the next claim (the
agent is told its outcome is unknown). Credentials are resolved before the start is
recorded, so a call waiting for a key has not started.
"""

from __future__ import annotations

import dataclasses

from autogen_core import CancellationToken

from runner.claimed import ClaimedRun
from runner.run_log import ApprovedCall
from runner.tool_calls import Outcome, ToolCallRecord, shorten_arguments
from runner.writes import ClaimedRunWriter
from store import events as ev
from store.events import NewEvent
from store.key_requests import KeyWanted


class CallInterrupted(Exception):
    """The run was stopped (cancelled, or the app is shutting down) during the call: its
    start is recorded and its result is not, so the next claim reports it unknown."""


def described(call: ApprovedCall) -> str:
    return f"{call.tool}({shorten_arguments(call.arguments)})"


async def run_approved_call(
    claimed: ClaimedRun, call: ApprovedCall, writer: ClaimedRunWriter, token: CancellationToken
) -> str | None:
    """Make the approved call (or account for one that may have been made); the team's
    next input. None: the run now waits for a credential the call needs."""
    toolkit = claimed.toolkit
    workbench = toolkit.workbenches.get(call.agent) or next(
        iter(toolkit.workbenches.values()), None
    )
    entry = workbench.entry(call.tool) if workbench is not None else None
    record = ToolCallRecord(call.call_id, call.tool, call.arguments)
    if call.started:
        record.outcome, record.detail = Outcome.UNKNOWN, "the app restarted during the call"
        text = (
            f"Your approved call {described(call)} was started, but the app restarted before "
            "its result was recorded. It is not repeated automatically: check its effect, "
            "or ask for it again if it is still needed."
        )
        return await _finish(claimed, call, writer, record, text, started_seq=None)
    server = call.tool.split(".", 1)[0]
    stand_in = workbench.entry(f"{server}.connect") if workbench is not None else None
    if entry is None and stand_in is not None and stand_in.needs:
        entry = stand_in  # its server waits for a credential: ask for it, then make the call
    if workbench is None or entry is None:
        record.outcome, record.detail = Outcome.ERROR, "the tool is no longer available"
        text = (
            f"Your approved call {described(call)} could not run: the tool is no longer available."
        )
        return await _finish(claimed, call, writer, record, text, started_seq=None)
    for provider in entry.needs:
        if await toolkit.credentials.get(provider) is None:
            wanted = KeyWanted(provider, f"The approved {call.tool} call needs it.")
            await writer.wait_for_credential(claimed.run, wanted, progress=claimed.progress())
            return None
    started = await writer.record(
        claimed.run,
        [
            NewEvent(
                ev.TOOL_CALL_STARTED,
                {
                    "action_id": call.action_id,
                    "tool": call.tool,
                    "arguments": shorten_arguments(call.arguments),
                    "decided_by": call.decided_by,
                },
            )
        ],
    )
    output, is_error = await workbench.run_entry(entry, record, token)
    if token.is_cancelled():
        raise CallInterrupted()
    verb = "failed" if is_error else "ran"
    text = (
        f"A person ({call.decided_by}) approved your call {described(call)}. It {verb} and "
        f"returned:\n{output}"
    )
    text = await _finish(claimed, call, writer, record, text, started_seq=started[0].seq)
    if toolkit.ledger.wanted:  # the service refused the key: the call was not carried out
        wanted = toolkit.ledger.wanted[0]
        toolkit.ledger.wanted.clear()
        await writer.wait_for_credential(claimed.run, wanted, progress=claimed.progress())
        return None
    return text


async def _finish(
    claimed: ClaimedRun,
    call: ApprovedCall,
    writer: ClaimedRunWriter,
    record: ToolCallRecord,
    text: str,
    *,
    started_seq: int | None,
) -> str:
    """Record the result and the agent's next input in one write: from here on, a restart
    gives the agent this input instead of making the call."""
    payload = {
        "action_id": call.action_id,
        **({"started_seq": started_seq} if started_seq is not None else {}),
        "decided_by": call.decided_by,
        **record.payload(),
    }
    change = dataclasses.replace(claimed.progress(), resume_input=text)
    await writer.record(claimed.run, [NewEvent(ev.TOOL_RESULT, payload)], change)
    return text
