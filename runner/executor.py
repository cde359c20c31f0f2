"""Drive one claimed run, turn by turn, until it finishes or parks itself in the database.

A turn is one `run_stream` call on a team loaded with `max_turns=1`. After each turn the
team state is saved together with the turn's agent messages (one transaction), the verifier
judges each message, and the run either goes on, waits (credential, approval: the team is
dropped and only rows remain), or finishes. Every write is conditional on this replica
still holding the run, so a cancel from anywhere wins at the next write (`RunLost`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from autogen_agentchat.base import TaskResult
from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    ModelClientStreamingChunkEvent,
)
from autogen_core import CancellationToken

from runner.approved_calls import CallInterrupted, run_approved_call
from runner.claimed import ClaimedRun
from runner.drafts import Drafts
from runner.llm import ProviderFailure, classify, describe, resolve_llm_key
from runner.mcp_servers import read_mcp_config
from runner.pacing import ThreadPace
from runner.redact import redact, redact_tree, redacted_json, secret_in_use
from runner.resume import next_input, with_replies
from runner.run_log import VERIFIER_CONTEXT_MESSAGES, HeardReply, Message, RunLog
from runner.team import TURN_BOUNDARY_REASON, LoadedTeam, load_team
from runner.team_catalog import TeamCatalog
from runner.team_config import TeamConfigError
from runner.termination import USER
from runner.tool_calls import judged_text, turn_tool_calls, without_tool_note
from runner.toolkit import Toolkit
from runner.verifier import Verifier, VerifierResult
from runner.writes import ClaimedRunWriter, RunLost
from store import Store
from store import events as ev
from store.changes import RunChange
from store.events import NewEvent
from store.key_requests import KeyWanted
from store.records import OfferedAction, Run, RunStatus
from store.settings import Settings

log = logging.getLogger(__name__)

# Finished by the runner itself (not cancelled by a person): a reply written meanwhile goes on.
CONTINUED_AFTER = frozenset({RunStatus.COMPLETED, RunStatus.FAILED})

KEY_REJECTED = "The LLM provider rejected the key that was used. Please add a valid key."
Item = BaseAgentEvent | BaseChatMessage


class Stopped(StrEnum):
    """Why a turn did not complete."""

    TIMED_OUT = "timed_out"  # RUN_TIMEOUT_S ran out during it
    ABORTED = "aborted"  # its token was cancelled: shutting down, cancelled or lease lost
    FAILED = "failed"  # the model call (or an agent) raised


@dataclass
class Turn:
    """One agent turn as a value: what was said, or why it stopped."""

    messages: list[BaseChatMessage] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    stop_reason: str | None = None
    stopped: Stopped | None = None
    error: Exception | None = None


class RunExecutor:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        verifier: Verifier | None,
        owner: str,
        auto_apply: Callable[[OfferedAction], Awaitable[None]] | None = None,
        teams: TeamCatalog | None = None,
        drafts: Drafts | None = None,
        answer_with_replies: Callable[[Run, list[HeardReply]], Awaitable[None]] | None = None,
        pace: ThreadPace | None = None,
    ) -> None:
        self._store = store
        self._pace = pace  # None: runs go as fast as they can, whatever their thread shows
        self._drafts = drafts or Drafts()
        self._settings = settings
        self._verifier = verifier if settings.verifier_enabled else None
        self._auto_apply = auto_apply
        self._answer_with_replies = answer_with_replies
        self._writer = ClaimedRunWriter(store, settings, owner)
        self._servers = read_mcp_config(settings)
        self._teams = teams or TeamCatalog.from_settings(settings)
        self.draining = False

    async def execute(self, run: Run, token: CancellationToken) -> None:
        """Drive `run` until it parks, ends or is lost. A failure of the run's own ends it
        as failed; only cancellation, and a database that cannot even record the failure,
        get past this.

        The run's key is registered with `redact` from the moment it is read until the
        run's last log line here, so even an unexpected error quoting it is logged without."""
        claimed: ClaimedRun | None = None
        with contextlib.ExitStack() as secrets:
            try:
                claimed = await self._claim(run, secrets)
                if claimed is not None:
                    try:
                        await self._drive(claimed, token)
                        await self.continue_if_replied(claimed)
                    finally:
                        await claimed.loaded.close()
                        # Shielded: a cancel at shutdown must not leave a server running.
                        await asyncio.shield(claimed.toolkit.close())
            except RunLost:
                log.info("run no longer held here", extra={"run_id": run.id})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error(
                    "run failed: %s",
                    redact(f"{type(exc).__name__}: {exc}"),
                    extra={"run_id": run.id},
                )
                text = describe(ProviderFailure.OTHER, self._settings)
                progress = claimed.progress() if claimed else RunChange()
                with contextlib.suppress(RunLost):
                    await self._writer.finish(
                        run, RunStatus.FAILED, text, progress=progress, error=("internal", text)
                    )

    async def _claim(self, run: Run, secrets: contextlib.ExitStack) -> ClaimedRun | None:
        """The key, the team (from its saved state) and the run's log, read once; None when
        the run had to park or end instead."""
        key = await resolve_llm_key(self._store, self._settings, run)
        if key.value is None:
            wanted = KeyWanted(self._settings.llm_provider, key.missing_reason)
            await self._writer.wait_for_credential(run, wanted)
            return None
        secrets.enter_context(secret_in_use(key.value))
        toolkit = Toolkit(self._store, self._settings, run, secrets, self._servers)
        try:
            loaded = await self._load_team(run, key.value, toolkit)
        except BaseException:
            await toolkit.close()
            raise
        if loaded is None:
            await toolkit.close()
            return None
        resuming = bool(run.team_state)
        log.info(
            "run claimed (%s key, %s)",
            key.source,
            "resuming" if resuming else "starting",
            extra={"run_id": run.id},
        )
        events = await self._store.runs.events(run.id) if resuming else []
        return ClaimedRun(
            run, key.value, loaded, RunLog(events), self._settings.run_timeout_s, toolkit
        )

    async def _load_team(self, run: Run, key: str, toolkit: Toolkit) -> LoadedTeam | None:
        """The team restored from the run's saved state, its agents given their tools (the
        MCP servers started for this claim); None (the run ended) when TEAM_CONFIG is
        broken or no longer fits the saved state."""
        named = self._teams.get(run.team_name) if run.team_name else self._teams.default
        if named is None:
            text = f"The team {run.team_name} is no longer available (TEAMS_DIR)."
            await self._writer.finish(run, RunStatus.INTERRUPTED, text, error=("team_config", text))
            return None
        try:
            loaded = load_team(self._settings, api_key=key, path=named.path)
        except (TeamConfigError, ValueError) as exc:
            detail = ("team_config", redact(str(exc), [key]))
            await self._writer.finish(
                run, RunStatus.INTERRUPTED, "The team could not be loaded.", error=detail
            )
            return None
        if run.team_state:
            try:
                await loaded.restore(run.team_state)
            except Exception as exc:  # e.g. TEAM_CONFIG changed under a waiting run
                await loaded.close()
                detail = ("team_state", redact(f"{type(exc).__name__}: {exc}", [key]))
                await self._writer.finish(
                    run,
                    RunStatus.INTERRUPTED,
                    "The saved team state does not fit the team any more.",
                    error=detail,
                )
                return None
        problems = await toolkit.open()
        await toolkit.equip(loaded.team)
        if problems:
            await self._writer.record(run, [NewEvent(ev.WARNING, {"text": p}) for p in problems])
        return loaded

    async def _drive(self, claimed: ClaimedRun, token: CancellationToken) -> None:
        run = claimed.run
        unverified = claimed.log.unverified() if self._verifier else None
        if unverified is not None and await self._judge(claimed, [unverified]):
            return  # judged after a crash, and the verdict parked the run
        approved = claimed.log.approved_call()
        if approved is not None:
            try:
                turn_input = await run_approved_call(claimed, approved, self._writer, token)
            except CallInterrupted:
                if self.draining:  # its start is recorded: the next claim says "unknown"
                    await self._writer.release(run, None)
                raise RunLost() from None
            if turn_input is None:
                return  # it waits for the credential the approved call needs
        else:
            turn_input = next_input(run, claimed.log)
        waiting = claimed.pending_replies  # written while the run waited, or before a restart
        if run.team_state and turn_input is None and not waiting and claimed.log.team_ended():
            # The team had ended when the process stopped, or "continue" was chosen on
            # its final message: its own decision stands.
            await self._complete(claimed)
            return
        while True:
            if self._pace is not None:  # its thread catches up before the next turn
                await self._pace.wait(run, token)
            if await self._limit_reached(claimed, turn_input):
                return
            await self._collect_replies(claimed)
            given = with_replies(turn_input, claimed.pending_replies, run.requester_id)
            try:
                turn = await self._take_turn(claimed, given, token)
                if turn.stopped is not None:
                    # Parked with its own input only: the replies stay unheard in the log,
                    # and the next claim gives them (once).
                    await self._turn_stopped(claimed, turn, turn_input)
                    return
                turn_input = None
                ended = turn.stop_reason != TURN_BOUNDARY_REASON
                ended = await claimed.loaded.termination.check(turn.items) is not None or ended
                judged = await self._record(claimed, turn, ended=ended)
                claimed.pending_replies = []
            finally:
                self._drafts.close(run.id)  # after the record: the live reply becomes it
            if await self._wait_for_wanted_credential(claimed):
                return  # its messages are judged when the run resumes
            if claimed.toolkit.ledger.approval is not None:
                # Judged now, without offering the verifier's own buttons: its verdict is
                # shown beside the held call, for whoever decides it.
                await self._judge(claimed, judged, may_park=False)
                await self._wait_for_tool_approval(claimed)
                return
            if await self._judge(claimed, judged) or await self._after_turn(claimed, ended):
                return

    async def _collect_replies(self, claimed: ClaimedRun) -> list[HeardReply]:
        """Add the replies written in the thread since the run last looked (while a turn
        ran, say) to those the team has not read yet; those not read yet."""
        events = await self._store.runs.events(claimed.run.id, after_seq=claimed.replies_after)
        if events:
            claimed.replies_after = events[-1].seq
        claimed.pending_replies.extend(
            HeardReply(e.seq, str(e.payload.get("user_id", "")), str(e.payload.get("text", "")))
            for e in events
            if e.kind == ev.HUMAN_REPLY
        )
        return claimed.pending_replies

    async def continue_if_replied(self, claimed: ClaimedRun) -> None:
        """A reply written while the run was finishing (in its last turn, at a limit) was
        told it would be heard: the run goes on from it instead of ending there."""
        replies = await self._collect_replies(claimed)
        if not replies:
            return
        run = await self._store.runs.get(claimed.run.id)
        if run is None or run.status not in CONTINUED_AFTER or not run.team_state:
            return
        await self._store.replies.continue_run(
            run,
            user_id=replies[-1].user_id,
            text="\n".join(r.text for r in replies),
            resume_input=with_replies(None, replies, run.requester_id),
            keys=[],
            heard_through=replies[-1].seq,
        )

    async def _answer_waiting_decision(self, claimed: ClaimedRun) -> None:
        """Replies written while the verifier judged (or a call was held) answer the
        decision the run now waits for, as their writer's "revise with this feedback"."""
        replies = await self._collect_replies(claimed)
        if replies and self._answer_with_replies is not None:
            await self._answer_with_replies(claimed.run, list(replies))

    async def _take_turn(
        self, claimed: ClaimedRun, task: str | None, token: CancellationToken
    ) -> Turn:
        """One agent turn. The deadline cancels it through its token, which aborts the
        agent's model call itself (cancelling only the consumer would wait for that call)."""
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(max(claimed.seconds_left(), 0.0), token.cancel)
        turn = Turn()
        try:
            async for item in claimed.loaded.team.run_stream(task=task, cancellation_token=token):
                if isinstance(item, TaskResult):
                    turn.stop_reason = item.stop_reason
                elif isinstance(item, ModelClientStreamingChunkEvent):
                    self._draft(claimed, item)
                elif isinstance(item, Item) and item.source != USER:
                    turn.items.append(item)
                    if isinstance(item, BaseChatMessage):
                        turn.messages.append(item)
        except asyncio.CancelledError:
            if not token.is_cancelled():
                raise  # the task itself was cancelled: not this turn's business
            timed_out = loop.time() >= deadline.when()
            turn.stopped = Stopped.TIMED_OUT if timed_out else Stopped.ABORTED
        except Exception as exc:
            timed_out = token.is_cancelled() and loop.time() >= deadline.when()
            turn.stopped, turn.error = (Stopped.TIMED_OUT if timed_out else Stopped.FAILED), exc
        finally:
            deadline.cancel()
        return turn

    def _draft(self, claimed: ClaimedRun, chunk: ModelClientStreamingChunkEvent) -> None:
        """A streamed piece of an agent's reply, for the live preview (never recorded)."""
        if chunk.source not in claimed.loaded.streaming:
            return  # e.g. a selector's own streamed choice of the next speaker
        self._drafts.add(
            claimed.run.id,
            source=chunk.source,
            chunk=chunk.content,
            turn=claimed.totals.turns + 1,
            identity=claimed.loaded.identities.get(chunk.source),
            message_id=chunk.full_message_id,
        )

    async def _turn_stopped(self, claimed: ClaimedRun, turn: Turn, turn_input: str | None) -> None:
        if turn.stopped == Stopped.TIMED_OUT:
            await self._timed_out(claimed)
        elif turn.stopped == Stopped.ABORTED:
            if self.draining:  # shutting down: resume from the last saved turn
                await self._writer.release(claimed.run, turn_input)
            raise RunLost()
        elif turn.error is not None:
            await self._provider_failed(claimed, turn.error, turn_input)

    async def _limit_reached(self, claimed: ClaimedRun, turn_input: str | None) -> bool:
        """Before each turn: shutting down, MAX_TURNS, RUN_TIMEOUT_S. True when it ended here."""
        if self.draining:
            await self._writer.release(claimed.run, turn_input)
            return True
        if claimed.turns_taken() >= self._settings.max_turns:
            text = f"Stopped at the turn limit (MAX_TURNS={self._settings.max_turns})."
            await self._writer.finish(
                claimed.run, RunStatus.COMPLETED, text, progress=claimed.progress()
            )
            return True
        if claimed.seconds_left() <= 0:
            await self._timed_out(claimed)
            return True
        return False

    async def _record(
        self, claimed: ClaimedRun, turn: Turn, *, ended: bool
    ) -> list[tuple[int, Message]]:
        """Save the turn's messages and the team state in one transaction, so a crash can
        neither lose a message nor replay one. `ended` (the team's own end) is kept with the
        last message, so a restart does not run the team past it."""
        state = await claimed.loaded.team.save_state()
        for item in turn.items:  # tool-call requests carry their model call's usage too
            if item.models_usage is not None:
                usage = item.models_usage
                claimed.totals.add(usage.prompt_tokens, usage.completion_tokens)
        if turn.messages:
            claimed.totals.turns += 1
        spoken = [(m.source, redact(m.to_text(), [claimed.key]), m) for m in turn.messages]
        heard = claimed.pending_replies[-1].seq if claimed.pending_replies else 0
        calls = redact_tree(turn_tool_calls(turn.items, claimed.toolkit.ledger), [claimed.key])
        events = []
        for index, (source, content, message) in enumerate(spoken):
            last = index == len(spoken) - 1
            payload = {
                "source": source,
                "content": content,
                "turn": claimed.totals.turns,
                "message_type": type(message).__name__,
                **({"ends_team": True} if ended and last else {}),
                **({"tool_calls": calls} if calls and last else {}),
                **({"heard_through": heard} if heard else {}),
            }
            identity = claimed.loaded.identities.get(source)
            if identity is not None:
                payload["identity"] = identity
            events.append(NewEvent(ev.AGENT_MESSAGE, payload))
            if last and calls:  # the verifier sees which tools ran, and how
                spoken[index] = (source, judged_text(content, calls), message)
        change = dataclasses.replace(
            claimed.progress(),
            team_state=redacted_json(state, [claimed.key]),
            resume_input=None,
        )
        appended = await self._writer.record(claimed.run, events, change)
        return [(e.seq, (s, c)) for e, (s, c, _) in zip(appended, spoken, strict=True)]

    async def _judge(
        self, claimed: ClaimedRun, judged: list[tuple[int, Message]], *, may_park: bool = True
    ) -> bool:
        """Verify each new message; True when a failing verdict parked the run for approval
        (never when not `may_park`: the verdicts are only recorded)."""
        for seq, message in judged:
            history = claimed.history
            seen = bool(history) and history[-1] == message  # recovered after a crash
            verdict = await self._verify(claimed, seq, message, history[:-1] if seen else history)
            if not seen:
                history.append(message)
            if may_park and await self._after_verdict(claimed, verdict, judged_agent=message[0]):
                return True
        return False

    async def _verify(
        self, claimed: ClaimedRun, seq: int, message: Message, context: list[Message]
    ) -> VerifierResult | None:
        if self._verifier is None:
            return None
        result = await self._verifier.judge(
            api_key=claimed.key,
            task=claimed.run.task,
            transcript=context[-VERIFIER_CONTEXT_MESSAGES:],
            message=message,
        )
        claimed.totals.add(result.prompt_tokens, result.completion_tokens)
        payload = {"agent_seq": seq, "source": message[0], **result.as_payload()}
        await self._writer.record(
            claimed.run, [NewEvent(ev.VERIFIER_RESULT, payload)], claimed.progress()
        )
        return result

    async def _after_verdict(
        self, claimed: ClaimedRun, verdict: VerifierResult | None, *, judged_agent: str
    ) -> bool:
        """Pause for approval on a failing verdict with actions. True when the run parked."""
        if verdict is None or verdict.verdict != "fail" or not verdict.suggested_actions:
            return False
        offered = await self._writer.wait_for_approval(
            claimed.run, verdict, judged_agent=judged_agent, progress=claimed.progress()
        )
        automatic = [a for a in offered if a.type in self._settings.auto_apply]
        if automatic and self._auto_apply is not None:
            await self._auto_apply(automatic[0])
        else:
            await self._answer_waiting_decision(claimed)
        return True

    async def _wait_for_wanted_credential(self, claimed: ClaimedRun) -> bool:
        """An agent called `request_credential` for a key that is not stored: park now,
        before the verifier could park the run for approval and the request be forgotten."""
        ledger = claimed.toolkit.ledger
        if not ledger.wanted:
            return False
        wanted, held = ledger.wanted[0], ledger.approval
        ledger.wanted.clear()
        ledger.approval = None
        notes = []
        if held is not None:  # one wait at a time: the key first; the call is asked again
            text = (
                f"{held.agent}'s call to {held.tool} was not offered for approval: the run needs a "
                f"{wanted.provider} key first. The agent can ask for the call again then."
            )
            notes.append(NewEvent(ev.WARNING, {"text": text}))
        await self._writer.wait_for_credential(
            claimed.run, wanted, progress=claimed.progress(), notes=notes
        )
        return True

    async def _wait_for_tool_approval(self, claimed: ClaimedRun) -> bool:
        """A call TOOL_APPROVAL holds back parks the run until a person decides."""
        approval, claimed.toolkit.ledger.approval = claimed.toolkit.ledger.approval, None
        if approval is None:
            return False
        await self._writer.wait_for_tool_approval(
            claimed.run, approval, progress=claimed.progress()
        )
        await self._answer_waiting_decision(claimed)
        return True

    async def _after_turn(self, claimed: ClaimedRun, ended: bool) -> bool:
        """After a judged turn: the token budget, then the team's own end."""
        budget = self._settings.run_token_budget
        tokens = claimed.tokens_used()
        if budget and tokens >= budget:
            text = f"The run used {tokens} tokens, over its budget of {budget} (RUN_TOKEN_BUDGET)."
            await self._fail(claimed, "token_budget", text)
            return True
        if ended:
            if await self._collect_replies(claimed):
                return False  # someone replied while it finished: the team hears them first
            await self._complete(claimed)
            return True
        return False

    async def _complete(self, claimed: ClaimedRun) -> None:
        await self._writer.finish(
            claimed.run, RunStatus.COMPLETED, _outcome(claimed.history), progress=claimed.progress()
        )

    async def _provider_failed(
        self, claimed: ClaimedRun, exc: Exception, turn_input: str | None
    ) -> None:
        failure = classify(exc)
        log.warning(
            "turn failed: %s (%s)",
            failure,
            redact(type(exc).__name__, [claimed.key]),
            extra={"run_id": claimed.run.id},
        )
        if failure == ProviderFailure.KEY_REJECTED:
            await self._writer.wait_for_credential(
                claimed.run,
                KeyWanted(self._settings.llm_provider, KEY_REJECTED, rejected=True),
                pending_input=turn_input,
                progress=claimed.progress(),
            )
            return
        await self._fail(claimed, failure.value, describe(failure, self._settings))

    async def _timed_out(self, claimed: ClaimedRun) -> None:
        text = f"The run took longer than RUN_TIMEOUT_S ({self._settings.run_timeout_s} s)."
        await self._fail(claimed, "timeout", text)

    async def _fail(self, claimed: ClaimedRun, code: str, text: str) -> None:
        """End the run as failed, with an `error` event carrying `code` and `text`."""
        await self._writer.finish(
            claimed.run, RunStatus.FAILED, text, progress=claimed.progress(), error=(code, text)
        )


def _outcome(history: list[Message]) -> str:
    if not history:
        return "The team finished without a message."
    source, content = history[-1]
    text = without_tool_note(content).replace("TERMINATE", "").strip()
    return f"{source}: {text[:600]}" if text else f"Finished by {source}."
