"""Drive one claimed run, turn by turn, until it finishes or parks itself in the database.

A turn is one `run_stream` call on a team loaded with `max_turns=1`. After each turn the
team state is saved together with the turn's agent messages (one transaction), the verifier
judges each message, and the run either goes on, waits (credential, approval: the team is
dropped and only rows remain), or finishes. Every write is conditional on this replica
still holding the run, so a cancel from anywhere wins at the next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from autogen_agentchat.base import TaskResult, Team
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage
from autogen_core import CancellationToken

from runner import events as ev
from runner.history import (
    VERIFIER_CONTEXT_MESSAGES,
    Message,
    recent_messages,
    team_ended,
    unverified_message,
)
from runner.llm import MissingKey, ProviderFailure, classify, describe, resolve_llm_key
from runner.outcome import Totals
from runner.redact import redact, redact_tree, secret_in_use
from runner.team import (
    TURN_BOUNDARY_REASON,
    TeamConfigError,
    build_team,
    close_team,
    read_team_config,
)
from runner.termination import USER, TeamTermination, split_termination
from runner.tools import ToolRequests, credential_tool, resume_note
from runner.verifier import Verifier, VerifierResult
from runner.writes import ClaimedRunWriter, RunLost
from store import Store
from store.models import utcnow
from store.records import OfferedAction, Run, RunStatus
from store.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Turn:
    """What one claimed run needs between turns; dropped when the run parks or ends."""

    run: Run
    key: str
    team: Team
    termination: TeamTermination
    requests: ToolRequests
    history: list[tuple[str, str]]
    totals: Totals
    claimed_at: datetime
    timeout_s: float

    def active_s(self) -> float:
        """Seconds the run has spent running, over all its claims (waits do not count)."""
        return self.run.active_s + (utcnow() - self.claimed_at).total_seconds()

    def seconds_left(self) -> float:
        return self.timeout_s - self.active_s()


class RunExecutor:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        verifier: Verifier | None,
        owner: str,
        auto_apply: Callable[[OfferedAction], Awaitable[None]] | None = None,
    ) -> None:
        self._auto_apply = auto_apply
        self._store = store
        self._settings = settings
        self._verifier = verifier
        self._writer = ClaimedRunWriter(store, settings, owner)
        self.draining = False

    async def execute(self, run: Run, token: CancellationToken) -> None:
        # The run's key is registered with `redact` from the moment it is read until the
        # run's last log line here, so even an unexpected error quoting it is logged without.
        with contextlib.ExitStack() as secrets:
            await self._execute_logging_errors(run, token, secrets)

    async def _execute_logging_errors(
        self, run: Run, token: CancellationToken, secrets: contextlib.ExitStack
    ) -> None:
        try:
            await self._execute(run, token, secrets)
        except RunLost:
            log.info("run no longer held here", extra={"run_id": run.id})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(
                "run failed: %s", redact(f"{type(exc).__name__}: {exc}"), extra={"run_id": run.id}
            )
            text = describe(ProviderFailure.OTHER, self._settings)
            try:
                await self._writer.finish(run, RunStatus.FAILED, text, error=("internal", text))
            except RunLost:
                pass

    async def _execute(
        self, run: Run, token: CancellationToken, secrets: contextlib.ExitStack
    ) -> None:
        turn = await self._prepare(run, secrets)
        if turn is None:
            return
        try:
            await self._turns(turn, token)
        finally:
            await close_team(turn.team)

    async def _turns(self, turn: Turn, token: CancellationToken) -> None:
        run = turn.run
        pending = await self._unverified(run)
        if pending is not None and await self._judge(turn, [pending]):
            return
        if run.team_state and run.resume_input is None and await team_ended(self._store, run):
            # The team had ended when the process stopped, or "continue" was chosen on
            # its final message: its own decision stands.
            await self._writer.finish(
                run, RunStatus.COMPLETED, _outcome(turn.history), totals=turn.totals
            )
            return
        next_input: str | None = run.resume_input if run.team_state else run.task
        while not await self._limit_reached(turn, next_input):
            # The deadline cancels the turn through its token, which aborts the agent's
            # model call itself (cancelling only the consumer would wait for that call).
            loop = asyncio.get_running_loop()
            deadline = loop.call_later(max(turn.seconds_left(), 0.0), token.cancel)
            try:
                messages, items, stop_reason = await self._one_turn(turn.team, next_input, token)
            except BaseException as exc:
                timed_out = token.is_cancelled() and loop.time() >= deadline.when()
                if isinstance(exc, asyncio.CancelledError | Exception) and timed_out:
                    await self._timed_out(run, turn.totals)
                    return
                if isinstance(exc, asyncio.CancelledError) and token.is_cancelled():
                    if self.draining:  # shutting down: resume from the last saved turn
                        await self._writer.release(run, next_input)
                    raise RunLost() from None
                if isinstance(exc, Exception):
                    await self._provider_failed(run, exc, next_input, turn.key, turn.totals)
                    return
                raise
            finally:
                deadline.cancel()
            next_input = None
            ended = stop_reason != TURN_BOUNDARY_REASON
            ended = await turn.termination.check(items) is not None or ended
            judged = await self._record_turn(turn, messages, items, ended=ended)
            if await self._wait_for_wanted_credential(turn):
                return  # its messages are judged when the run resumes
            if await self._judge(turn, judged) or await self._after_turn(turn, ended=ended):
                return

    async def _prepare(self, run: Run, secrets: contextlib.ExitStack) -> Turn | None:
        """The key and the team (from its saved state); None when the run had to park or end."""
        key = await resolve_llm_key(self._store, self._settings, run)
        if isinstance(key, MissingKey):
            await self._writer.wait_for_credential(
                run,
                provider=self._settings.llm_provider,
                reason=key.reason,
                resume_input=run.resume_input,
            )
            return None
        secrets.enter_context(secret_in_use(key.value))
        requests = ToolRequests()
        try:
            config, termination = split_termination(read_team_config(self._settings))
            team = build_team(
                config,
                settings=self._settings,
                api_key=key.value,
                tools=[credential_tool(self._store, run, requests)],
            )
        except (TeamConfigError, ValueError) as exc:
            await self._writer.finish(
                run,
                RunStatus.INTERRUPTED,
                "The team could not be loaded.",
                error=("team_config", redact(str(exc), [key.value])),
            )
            return None
        try:
            if run.team_state:
                state = json.loads(run.team_state)
                await team.load_state(state)
                await termination.replay(state)
        except Exception as exc:  # noqa: BLE001 - e.g. TEAM_CONFIG changed under a waiting run
            await close_team(team)
            await self._writer.finish(
                run,
                RunStatus.INTERRUPTED,
                "The saved team state does not fit the team any more.",
                error=("team_state", redact(f"{type(exc).__name__}: {exc}", [key.value])),
            )
            return None
        log.info(
            "run claimed (%s key, %s)",
            key.source,
            "resuming" if run.team_state else "starting",
            extra={"run_id": run.id},
        )
        return Turn(
            run=run,
            key=key.value,
            team=team,
            termination=termination,
            requests=requests,
            history=await recent_messages(self._store, run),
            totals=Totals.of(run),
            claimed_at=utcnow(),
            timeout_s=self._settings.run_timeout_s,
        )

    async def _limit_reached(self, turn: Turn, next_input: str | None) -> bool:
        """Before each turn: shutting down, MAX_TURNS, RUN_TIMEOUT_S. True when it ended here."""
        if self.draining:
            await self._writer.release(turn.run, next_input)
            return True
        if turn.totals.turns >= self._settings.max_turns:
            await self._writer.finish(
                turn.run,
                RunStatus.COMPLETED,
                f"Stopped at the turn limit (MAX_TURNS={self._settings.max_turns}).",
                totals=turn.totals,
            )
            return True
        if turn.seconds_left() <= 0:
            await self._timed_out(turn.run, turn.totals)
            return True
        return False

    async def _record_turn(
        self,
        turn: Turn,
        messages: list[BaseChatMessage],
        items: list[BaseAgentEvent | BaseChatMessage],
        *,
        ended: bool,
    ) -> list[tuple[int, tuple[str, str]]]:
        """Save the turn's messages and the team state in one transaction, so a crash can
        neither lose a message nor replay one. `ended` (the team's own end) is kept with the
        last message, so a restart does not run the team past it."""
        state = json.dumps(redact_tree(await turn.team.save_state(), [turn.key]))
        for item in items:  # tool-call requests carry their model call's usage too
            if item.models_usage is not None:
                turn.totals.add(
                    item.models_usage.prompt_tokens, item.models_usage.completion_tokens
                )
        if messages:
            turn.totals.turns += 1
        spoken = [(m.source, redact(m.to_text(), [turn.key]), type(m).__name__) for m in messages]
        appended = await self._writer.write(
            turn.run,
            [
                (
                    ev.AGENT_MESSAGE,
                    {
                        "source": source,
                        "content": content,
                        "turn": turn.totals.turns,
                        "message_type": message_type,
                        **({"ends_team": True} if ended and index == len(spoken) - 1 else {}),
                    },
                )
                for index, (source, content, message_type) in enumerate(spoken)
            ],
            team_state=state,
            resume_input=None,
            active_s=turn.active_s(),
            **turn.totals.columns(),
        )
        return [
            (event.seq, (source, content))
            for event, (source, content, _) in zip(appended, spoken, strict=True)
        ]

    async def _judge(self, turn: Turn, judged: list[tuple[int, tuple[str, str]]]) -> bool:
        """Verify each new message; True when a failing verdict parked the run for approval."""
        for seq, message in judged:
            seen = bool(turn.history) and turn.history[-1] == message  # recovered after a crash
            context = turn.history[:-1] if seen else turn.history
            verdict = await self._verify(turn.run, turn.key, context, (seq, message), turn.totals)
            if not seen:
                turn.history.append(message)
            if await self._after_verdict(turn.run, verdict, turn.totals, judged_agent=message[0]):
                return True
        return False

    async def _wait_for_wanted_credential(self, turn: Turn) -> bool:
        """An agent called `request_credential` for a key that is not stored: park now,
        before the verifier could park the run for approval and the request be forgotten."""
        if not turn.requests.wanted:
            return False
        provider, reason = turn.requests.wanted[0]
        turn.requests.wanted.clear()
        await self._writer.wait_for_credential(
            turn.run,
            provider=provider,
            reason=reason,
            resume_input=resume_note(provider),
        )
        return True

    async def _after_turn(self, turn: Turn, *, ended: bool) -> bool:
        """After a judged turn: the token budget, then the team's own end."""
        run, totals = turn.run, turn.totals
        budget = self._settings.run_token_budget
        if budget and totals.tokens >= budget:
            text = (
                f"The run used {totals.tokens} tokens, over its budget of {budget} "
                "(RUN_TOKEN_BUDGET)."
            )
            await self._writer.finish(
                run, RunStatus.FAILED, text, totals=totals, error=("token_budget", text)
            )
            return True
        if ended:
            await self._writer.finish(
                run, RunStatus.COMPLETED, _outcome(turn.history), totals=totals
            )
            return True
        return False

    async def _one_turn(
        self, team: Team, task: str | None, token: CancellationToken
    ) -> tuple[list[BaseChatMessage], list[BaseAgentEvent | BaseChatMessage], str | None]:
        """One agent turn: its chat messages, everything the agents emitted, the stop reason."""
        messages: list[BaseChatMessage] = []
        items: list[BaseAgentEvent | BaseChatMessage] = []
        stop_reason: str | None = None
        async for item in team.run_stream(task=task, cancellation_token=token):
            if isinstance(item, TaskResult):
                stop_reason = item.stop_reason
            elif isinstance(item, BaseAgentEvent | BaseChatMessage) and item.source != USER:
                items.append(item)
                if isinstance(item, BaseChatMessage):
                    messages.append(item)
        return messages, items, stop_reason

    async def _verify(
        self,
        run: Run,
        api_key: str,
        history: list[tuple[str, str]],
        message: tuple[int, tuple[str, str]],
        totals: Totals,
    ) -> VerifierResult | None:
        if self._verifier is None or not self._settings.verifier_enabled:
            return None
        seq, (source, content) = message
        result = await self._verifier.judge(
            api_key=api_key,
            task=run.task,
            transcript=history[-VERIFIER_CONTEXT_MESSAGES:],
            message=(source, content),
        )
        totals.add(result.prompt_tokens, result.completion_tokens)
        await self._writer.write(
            run,
            [(ev.VERIFIER_RESULT, {"agent_seq": seq, "source": source, **result.as_payload()})],
            **totals.columns(),
        )
        return result

    async def _after_verdict(
        self, run: Run, verdict: VerifierResult | None, totals: Totals, *, judged_agent: str
    ) -> bool:
        """Pause for approval on a failing verdict with actions. True when the run parked."""
        if verdict is None or verdict.verdict != "fail" or not verdict.suggested_actions:
            return False
        offered = await self._writer.wait_for_approval(
            run, verdict, totals, judged_agent=judged_agent
        )
        if self._auto_apply is not None:
            for action in offered:
                if action.type in self._settings.auto_apply:
                    await self._auto_apply(action)
                    break
        return True

    async def _unverified(self, run: Run) -> tuple[int, Message] | None:
        if self._verifier is None or not self._settings.verifier_enabled:
            return None
        return await unverified_message(self._store, run)

    async def _provider_failed(
        self, run: Run, exc: BaseException, turn_input: str | None, api_key: str, totals: Totals
    ) -> None:
        failure = classify(exc)
        log.warning(
            "turn failed: %s (%s)",
            failure,
            redact(type(exc).__name__, [api_key]),
            extra={"run_id": run.id},
        )
        if failure == ProviderFailure.KEY_REJECTED:
            await self._writer.wait_for_credential(
                run,
                provider=self._settings.llm_provider,
                reason="The LLM provider rejected the key that was used. Please add a valid key.",
                resume_input=turn_input if run.team_state or totals.turns else None,
                rejected=True,
            )
            return
        text = describe(failure, self._settings)
        await self._writer.finish(
            run, RunStatus.FAILED, text, totals=totals, error=(failure.value, text)
        )

    async def _timed_out(self, run: Run, totals: Totals) -> None:
        text = f"The run took longer than RUN_TIMEOUT_S ({self._settings.run_timeout_s} s)."
        await self._writer.finish(
            run, RunStatus.FAILED, text, totals=totals, error=("timeout", text)
        )


def _outcome(history: list[tuple[str, str]]) -> str:
    if not history:
        return "The team finished without a message."
    source, content = history[-1]
    text = content.replace("TERMINATE", "").strip()
    return f"{source}: {text[:600]}" if text else f"Finished by {source}."
