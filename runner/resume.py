"""What a claimed run's team is told next: the one place that decides it.

A run keeps in its row only an input its team has not yet been given (`resume_input`: an
approved revision's feedback, or the input of a turn that was cut short). Everything else
follows from the run's own log when it is claimed: a run that never took a turn starts with
its task; one whose awaited credential arrived since it last spoke is told so; otherwise the
team simply goes on from its saved state.
"""

from __future__ import annotations

from runner.run_log import HeardReply, RunLog
from store.records import Run


def credential_note(providers: list[str]) -> str:
    """What the team is told when credentials it waited for have arrived."""
    names = " and ".join(providers)
    noun = "credential is" if len(providers) == 1 else "credentials are"
    return f"The {names} {noun} now available. Continue the task."


def revise_input(feedback: str, agent: str) -> str:
    """The message the team resumes with after an approved "revise"."""
    if not agent:
        return (
            f"Feedback from the verifier, approved by a person: {feedback}\n"
            "Please revise your last answer accordingly."
        )
    return (
        f"Feedback from the verifier on {agent}'s last message, approved by a person: "
        f"{feedback}\n{agent}, please revise your answer accordingly."
    )


def person_input(feedback: str, agent: str, decided_by: str) -> str:
    """The message the team resumes with when a person answered the verifier's buttons by
    replying in the thread: their own words, not the verifier's."""
    whose = f"{agent}'s last message" if agent else "the last message"
    ask = f"{agent}, please revise your answer accordingly." if agent else "Please revise."
    return f'A person ({decided_by}) replied in the thread about {whose}: "{feedback}"\n{ask}'


def reply_input(replies: list[HeardReply], requester_id: str) -> str:
    """What the team is told of replies people wrote in the run's thread."""
    lines = []
    for reply in replies:
        who = (
            "The person who asked for this run"
            if reply.user_id == requester_id
            else f"An approver ({reply.user_id})"
        )
        lines.append(f'{who} replied in the thread: "{reply.text}"')
    return "\n".join(lines) + "\nTake this into account in your next step."


def with_replies(
    turn_input: str | None, replies: list[HeardReply], requester_id: str
) -> str | None:
    """A turn's input with the thread's new replies after it."""
    if not replies:
        return turn_input
    heard = reply_input(replies, requester_id)
    return f"{turn_input}\n\n{heard}" if turn_input else heard


def next_input(run: Run, log: RunLog) -> str | None:
    """The input of the claim's first turn; None: the team continues by itself."""
    if not run.team_state:
        return run.task
    if run.resume_input is not None:
        return run.resume_input
    arrived = log.credentials_since_last_message()
    return credential_note(arrived) if arrived else None
