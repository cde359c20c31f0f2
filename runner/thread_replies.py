"""A person's reply in a run's thread, handed to the team as human input.

Who may steer a run is who may decide for it: its requester, or someone in APPROVERS; other
people's replies are not the team's business and are dropped without a word. What a reply
does depends on where the run is:

- queued, running or waiting for a key: kept in the run's log (`human_reply`) and given to
  the team at its next turn boundary (with the turn's other input, if any);
- waiting for a decision: it is the decision, "revise with this feedback", decided by that
  person: a held tool call is denied with the reply as the reason, the verifier's buttons are
  answered by their revise (else continue) action with the reply as the feedback;
- finished: the same run goes on (same team state, same thread) with the reply as input, its
  limits counted afresh from there.

The reply is scrubbed of anything key-shaped before it is kept: a person pasting a key into
the thread must not hand it to the model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

from runner.redact import redact
from runner.resume import reply_input
from runner.run_log import HeardReply
from store import Store
from store.actions import Decision, DecisionOutcome, may_decide
from store.records import OfferedAction, Run, RunStatus
from store.replies import ReplyOutcome
from store.settings import Settings

MAX_REPLY_CHARS = 4_000


def message_key(channel_id: str, ts: str) -> str:
    """A Slack message's own id (its channel and ts), the same however it is delivered."""
    return f"ts:{channel_id}:{ts}"


Decide = Callable[..., Awaitable[Decision]]  # RunManager.decide(action_id, user_id=, note=)


class Steering(StrEnum):
    """What a thread reply did, for the front end's private acknowledgement."""

    HEARD = "heard"  # the team reads it at its next turn
    REVISING = "revising"  # it answered the run's open decision
    CONTINUED = "continued"  # the finished run goes on from it
    NOT_CONTINUABLE = "not_continuable"  # finished before its team ever spoke
    IGNORED = "ignored"  # not a run's thread, not someone who may steer it, a repeat


class ThreadReplies:
    def __init__(self, store: Store, settings: Settings, decide: Decide) -> None:
        self._store = store
        self._settings = settings
        self._decide = decide

    async def run_in_thread(self, channel_id: str, thread_ts: str) -> Run | None:
        """The run working in this thread, if any."""
        return await self._store.replies.in_thread(channel_id, thread_ts)

    async def reply(
        self, *, channel_id: str, thread_ts: str, user_id: str, text: str, keys: list[str]
    ) -> Steering:
        """Act on one reply once (`keys`: the ids Slack delivered it under)."""
        run = await self._store.replies.in_thread(channel_id, thread_ts)
        approvers = frozenset(self._settings.approvers)
        if run is None or not may_decide(
            user_id, requester_id=run.requester_id, approvers=approvers
        ):
            return Steering.IGNORED
        text = await self._scrubbed(run, user_id, text)
        if not text or await self._store.replies.known(keys):
            return Steering.IGNORED
        for _ in range(3):  # the run may move on between the read and the write
            outcome = await self._act(run, user_id=user_id, text=text, keys=keys)
            if isinstance(outcome, list):
                keys = outcome  # the ids are taken: later writes must not need them again
            elif outcome is not None:
                return outcome
            fresh = await self._store.runs.get(run.id)
            if fresh is None:
                return Steering.IGNORED
            run = fresh
        return Steering.IGNORED

    async def _scrubbed(self, run: Run, user_id: str, text: str) -> str:
        """The reply without any key its writer, the requester or the workspace stored (or
        anything key-shaped): a key pasted into the thread must not reach the model."""
        stored = await self._store.credentials.values_to_hide(
            workspace_id=run.workspace_id, user_ids=[user_id, run.requester_id]
        )
        return redact(text.strip(), stored)[:MAX_REPLY_CHARS]

    async def _act(
        self, run: Run, *, user_id: str, text: str, keys: list[str]
    ) -> Steering | list[str] | None:
        """None when the run moved on meanwhile (try again with its new state); an empty
        list when, besides, the message's ids are taken (try again without them)."""
        if run.status == RunStatus.WAITING_APPROVAL:
            return await self._revise(run, user_id=user_id, text=text, keys=keys)
        if run.status.finished:
            if not run.team_state:  # said once, however often the message comes
                claimed = await self._store.replies.claim(run.id, keys)
                return Steering.NOT_CONTINUABLE if claimed or not keys else Steering.IGNORED
            said = reply_input([HeardReply(0, user_id, text)], run.requester_id)
            outcome = await self._store.replies.continue_run(
                run, user_id=user_id, text=text, resume_input=said, keys=keys
            )
            return _steering(outcome, Steering.CONTINUED, keys)
        outcome = await self._store.replies.hear(run, user_id=user_id, text=text, keys=keys)
        return _steering(outcome, Steering.HEARD, keys)

    async def _revise(
        self, run: Run, *, user_id: str, text: str, keys: list[str]
    ) -> Steering | list[str] | None:
        """The reply as the person's decision. The message's ids are taken first, so a
        second delivery of it during the decision finds them and does nothing."""
        if keys and not await self._store.replies.claim(run.id, keys):
            return Steering.IGNORED
        action = _revising_action(await self._store.actions.open_for(run.id))
        if action is not None:
            decision = await self._decide(
                action.id, user_id=user_id, note=text, note_limit=MAX_REPLY_CHARS
            )
            if decision.outcome == DecisionOutcome.APPROVED:
                return Steering.REVISING
            if decision.outcome == DecisionOutcome.NOT_AUTHORISED:
                return Steering.IGNORED
        # Only stop or a key to ask for, or the buttons decided a moment ago (the click
        # being applied): the team hears the reply when it resumes.
        outcome = await self._store.replies.hear(
            run, user_id=user_id, text=text, keys=[], deciding=True
        )
        return _steering(outcome, Steering.HEARD, [])

    async def answer_with_replies(self, run: Run, replies: list[HeardReply]) -> None:
        """Replies kept while the run was still working (the verifier judging, say) answer
        the decision it has just opened, as their last writer's decision."""
        action = _revising_action(await self._store.actions.open_for(run.id))
        if action is None or not replies:
            return  # they are heard when the run resumes
        text = "\n".join(reply.text for reply in replies)[:MAX_REPLY_CHARS]
        await self._decide(
            action.id,
            user_id=replies[-1].user_id,
            note=text,
            note_limit=MAX_REPLY_CHARS,
            heard_through=replies[-1].seq,
        )


def _revising_action(actions: list[OfferedAction]) -> OfferedAction | None:
    """The button a reply stands for: deny a held call (the reply is the reason), else the
    verifier's revise, else its continue (either way with the reply as the feedback)."""
    for kind in ("deny_tool", "revise", "continue"):
        found = next((a for a in actions if a.type == kind), None)
        if found is not None:
            return found
    return None


def _steering(
    outcome: ReplyOutcome, done: Steering, keys: list[str]
) -> Steering | list[str] | None:
    if outcome == ReplyOutcome.MOVED_ON:
        return [] if not keys else None
    return done if outcome in (ReplyOutcome.HEARD, ReplyOutcome.CONTINUED) else Steering.IGNORED
