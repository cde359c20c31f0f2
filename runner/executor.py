"""Drive one claimed run, turn by turn, until it finishes or parks itself in the database.

A turn is one `run_stream` call on a team loaded with `max_turns=1`. After each turn the
team state is saved together with the turn's agent messages (one transaction), the verifier
judges each message, and the run either goes on, waits (credential, approval: the team is
dropped and only rows remain), or finishes. Every write is conditional on this replica
still holding the run, so a cancel from anywhere wins at the next write.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from autogen_agentchat.base import TaskResult, Team
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage
from autogen_core import CancellationToken
from autogen_core.tools import FunctionTool

from runner import events as ev
from runner.llm import ProviderFailure, classify, describe, resolve_llm_key
from runner.outcome import Totals, closing_events
from runner.redact import redact
from runner.team import (
    TURN_BOUNDARY_REASON,
    TeamConfigError,
    build_team,
    close_team,
    read_team_config,
)
from runner.termination import USER, TeamTermination, split_termination
from runner.verifier import Verifier, VerifierResult
from store import Store
from store.actions import ActionSpec
from store.credentials import WORKSPACE_USER
from store.crypto import Owner
from store.models import utcnow
from store.records import OfferedAction, Run, RunStatus
from store.settings import Settings

log = logging.getLogger(__name__)

VERIFIER_CONTEXT_MESSAGES = 8
RUNNING = [RunStatus.RUNNING]


class RunLost(Exception):
    """This replica no longer holds the run (cancelled or taken over); stop quietly."""


@dataclass
class ToolRequests:
    """Credentials that agents asked for during the current turn."""

    wanted: list[tuple[str, str]] = field(default_factory=list)


def credential_tool(store: Store, run: Run, requests: ToolRequests) -> FunctionTool:
    """`request_credential(provider, reason)`: says whether a key exists, never its value."""

    async def request_credential(provider: str, reason: str) -> str:
        name = provider.strip().lower()[:64] or "unknown"
        for user_id in (run.requester_id, WORKSPACE_USER):
            if await store.credentials.exists(Owner(run.workspace_id, user_id, name)):
                return f"A {name} credential is available; tools that need it will read it."
        requests.wanted.append((name, reason.strip()[:500] or "An agent needs it."))
        return (
            f"No {name} credential is stored. The run pauses after this turn and asks the "
            "requester for it privately; you will be told when it is available."
        )

    return FunctionTool(
        request_credential,
        name="request_credential",
        description=(
            "Ask the person who started this run for a credential (API key) for a provider. "
            "Returns only whether it is available, never the value."
        ),
    )


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
    deadline: datetime

    def seconds_left(self) -> float:
        return (self.deadline - utcnow()).total_seconds()


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
        self._owner = owner
        self.draining = False

    async def execute(self, run: Run, token: CancellationToken) -> None:
        try:
            await self._execute(run, token)
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
                await self.finish(run, RunStatus.FAILED, text, error=("internal", text))
            except RunLost:
                pass

    async def _execute(self, run: Run, token: CancellationToken) -> None:
        turn = await self._prepare(run)
        if turn is None:
            return
        try:
            await self._turns(turn, token)
        finally:
            await close_team(turn.team)

    async def _turns(self, turn: Turn, token: CancellationToken) -> None:
        run = turn.run
        pending = await self._unverified_message(run)
        if pending is not None and await self._judge(turn, [pending]):
            return
        if run.team_state and run.resume_input is None and await self._team_ended(run):
            # The team had ended when the process stopped, or "continue" was chosen on
            # its final message: its own decision stands.
            await self.finish(run, RunStatus.COMPLETED, _outcome(turn.history), totals=turn.totals)
            return
        next_input: str | None = run.resume_input if run.team_state else run.task
        while not await self._limit_reached(turn, next_input):
            try:
                messages, items, stop_reason = await asyncio.wait_for(
                    self._one_turn(turn.team, next_input, token), timeout=turn.seconds_left()
                )
            except TimeoutError:
                token.cancel()
                await self._timed_out(run, turn.totals)
                return
            except asyncio.CancelledError:
                if token.is_cancelled():
                    raise RunLost() from None
                raise
            except Exception as exc:
                await self._provider_failed(run, exc, next_input, turn.key, turn.totals)
                return
            next_input = None
            ended = stop_reason != TURN_BOUNDARY_REASON
            ended = await turn.termination.check(items) is not None or ended
            judged = await self._record_turn(turn, messages, ended=ended)
            if await self._judge(turn, judged) or await self._after_turn(turn, ended=ended):
                return

    async def _prepare(self, run: Run) -> Turn | None:
        """The key and the team (from its saved state); None when the run had to park or end."""
        key = await resolve_llm_key(self._store, self._settings, run)
        if key is None:
            await self.wait_for_credential(
                run,
                provider=self._settings.llm_provider,
                reason="The agents need an LLM API key to start.",
                resume_input=run.resume_input,
            )
            return None
        requests = ToolRequests()
        try:
            config, termination = split_termination(read_team_config(self._settings))
            team = build_team(
                config,
                settings=self._settings,
                api_key=key.value,
                tools=[credential_tool(self._store, run, requests)],
            )
            if run.team_state:
                state = json.loads(run.team_state)
                await team.load_state(state)
                await termination.replay(state)
        except (TeamConfigError, ValueError) as exc:
            await self.finish(
                run,
                RunStatus.INTERRUPTED,
                "The team could not be loaded.",
                error=("team_config", redact(str(exc), [key.value])),
            )
            return None
        started = run.started_at or utcnow()
        return Turn(
            run=run,
            key=key.value,
            team=team,
            termination=termination,
            requests=requests,
            history=await self._recent_messages(run),
            totals=Totals.of(run),
            deadline=started + timedelta(seconds=self._settings.run_timeout_s),
        )

    async def _limit_reached(self, turn: Turn, next_input: str | None) -> bool:
        """Before each turn: shutting down, MAX_TURNS, RUN_TIMEOUT_S. True when it ended here."""
        if self.draining:
            await self._release(turn.run, next_input)
            return True
        if turn.totals.turns >= self._settings.max_turns:
            await self.finish(
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
        self, turn: Turn, messages: list[BaseChatMessage], *, ended: bool
    ) -> list[tuple[int, tuple[str, str]]]:
        """Save the turn's messages and the team state in one transaction, so a crash can
        neither lose a message nor replay one. `ended` (the team's own end) is kept with the
        last message, so a restart does not run the team past it."""
        state = json.dumps(await turn.team.save_state())
        for message in messages:
            if message.models_usage is not None:
                turn.totals.add(
                    message.models_usage.prompt_tokens, message.models_usage.completion_tokens
                )
        if messages:
            turn.totals.turns += 1
        spoken = [(m.source, redact(m.to_text(), [turn.key]), type(m).__name__) for m in messages]
        appended = await self._write(
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
            if await self._after_verdict(turn.run, verdict, turn.totals):
                return True
        return False

    async def _after_turn(self, turn: Turn, *, ended: bool) -> bool:
        """After a turn: token budget, credentials the agents asked for, the team's own end."""
        run, totals = turn.run, turn.totals
        budget = self._settings.run_token_budget
        if budget and totals.tokens >= budget:
            text = (
                f"The run used {totals.tokens} tokens, over its budget of {budget} "
                "(RUN_TOKEN_BUDGET)."
            )
            await self.finish(
                run, RunStatus.FAILED, text, totals=totals, error=("token_budget", text)
            )
            return True
        if turn.requests.wanted:
            provider, reason = turn.requests.wanted[0]
            turn.requests.wanted.clear()
            await self.wait_for_credential(
                run,
                provider=provider,
                reason=reason,
                resume_input=f"The {provider} credential is now available. Continue the task.",
            )
            return True
        if ended:
            await self.finish(run, RunStatus.COMPLETED, _outcome(turn.history), totals=totals)
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

    async def _write(
        self, run: Run, events: list[tuple[str, dict[str, Any]]], **changes: Any
    ) -> list[Any]:
        result = await self._store.runs.transition(
            run.id, expected=RUNNING, held_by=self._owner, events=events, **changes
        )
        if result is False:
            raise RunLost()
        return result if isinstance(result, list) else []

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
        await self._write(
            run,
            [(ev.VERIFIER_RESULT, {"agent_seq": seq, "source": source, **result.as_payload()})],
            **totals.columns(),
        )
        return result

    async def _after_verdict(
        self, run: Run, verdict: VerifierResult | None, totals: Totals
    ) -> bool:
        """Pause for approval on a failing verdict with actions. True when the run parked."""
        if verdict is None or verdict.verdict != "fail" or not verdict.suggested_actions:
            return False
        specs = [
            ActionSpec(
                a["type"],
                a["label"],
                {"feedback": verdict.reason, **a["params"]}
                if a["type"] == "revise"
                else a["params"],
            )
            for a in verdict.suggested_actions
        ]
        for fallback in ("continue", "stop"):
            if not any(spec.type == fallback for spec in specs):
                specs.append(ActionSpec(fallback, _FALLBACK_LABELS[fallback], {}))
        offered = await self._store.actions.offer(
            run_id=run.id,
            specs=specs,
            event_payload={"reason": verdict.reason},
            expected=RUNNING,
            held_by=self._owner,
            status=RunStatus.WAITING_APPROVAL,
            lease_owner=None,
            lease_expires_at=None,
            **totals.columns(),
        )
        if offered is None:
            raise RunLost()
        if self._auto_apply is not None:
            for action in offered[1]:
                if action.type in self._settings.auto_apply:
                    await self._auto_apply(action)
                    break
        return True

    async def wait_for_credential(
        self,
        run: Run,
        *,
        provider: str,
        reason: str,
        resume_input: str | None,
        rejected: bool = False,
    ) -> None:
        request = await self._store.credentials.request_and_wait(
            run_id=run.id,
            held_by=self._owner,
            workspace_id=run.workspace_id,
            user_id=run.requester_id,
            provider=provider,
            reason=reason,
            expires_at=utcnow() + timedelta(seconds=self._settings.credential_timeout_s),
            event_payload={"rejected": rejected},
            expected=RUNNING,
            status=RunStatus.WAITING_CREDENTIAL,
            resume_input=resume_input,
            lease_owner=None,
            lease_expires_at=None,
        )
        if request is None:
            raise RunLost()

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
            await self.wait_for_credential(
                run,
                provider=self._settings.llm_provider,
                reason="The LLM provider rejected the key that was used. Please add a valid key.",
                resume_input=turn_input if run.team_state or totals.turns else None,
                rejected=True,
            )
            return
        text = describe(failure, self._settings)
        await self.finish(run, RunStatus.FAILED, text, totals=totals, error=(failure.value, text))

    async def _timed_out(self, run: Run, totals: Totals) -> None:
        text = f"The run took longer than RUN_TIMEOUT_S ({self._settings.run_timeout_s} s)."
        await self.finish(run, RunStatus.FAILED, text, totals=totals, error=("timeout", text))

    async def _release(self, run: Run, next_input: str | None) -> None:
        """Shutting down: hand the run back to the queue from its saved state."""
        await self._store.runs.transition(
            run.id,
            expected=RUNNING,
            held_by=self._owner,
            status=RunStatus.QUEUED,
            lease_owner=None,
            lease_expires_at=None,
            resume_input=next_input,
            events=[(ev.INFO, {"text": "The app is restarting; this run continues shortly."})],
        )

    async def finish(
        self,
        run: Run,
        status: RunStatus,
        outcome: str,
        *,
        totals: Totals | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        current = await self._store.runs.get(run.id)
        if current is None:
            return
        totals = totals or Totals.of(current)
        events = closing_events(current, status, outcome, totals=totals, error=error)
        result = await self._store.runs.transition(
            run.id,
            expected=[RunStatus.RUNNING, RunStatus.QUEUED, *WAITING],
            events=events,
            status=status,
            outcome=outcome,
            **totals.columns(),
        )
        if result is False:
            raise RunLost()

    async def _recent_messages(self, run: Run) -> list[tuple[str, str]]:
        if run.turns == 0:
            return []
        events = await self._store.runs.events(run.id)
        return [
            (e.payload.get("source", "?"), e.payload.get("content", ""))
            for e in events
            if e.kind == ev.AGENT_MESSAGE
        ][-VERIFIER_CONTEXT_MESSAGES:]

    async def _team_ended(self, run: Run) -> bool:
        """Whether the last recorded turn ended the team (by its condition or by itself)."""
        events = await self._store.runs.events(run.id)
        last = next((e for e in reversed(events) if e.kind == ev.AGENT_MESSAGE), None)
        return bool(last is not None and last.payload.get("ends_team"))

    async def _unverified_message(self, run: Run) -> tuple[int, tuple[str, str]] | None:
        """An agent message saved just before a crash, whose verdict was never written."""
        if self._verifier is None or not self._settings.verifier_enabled or run.turns == 0:
            return None
        events = await self._store.runs.events(run.id)
        judged = {e.payload.get("agent_seq") for e in events if e.kind == ev.VERIFIER_RESULT}
        messages = [e for e in events if e.kind == ev.AGENT_MESSAGE]
        if not messages or messages[-1].seq in judged:
            return None
        last = messages[-1]
        return last.seq, (last.payload.get("source", "?"), last.payload.get("content", ""))


WAITING = [RunStatus.WAITING_CREDENTIAL, RunStatus.WAITING_APPROVAL]
_FALLBACK_LABELS = {"continue": "Continue anyway", "stop": "Stop the run"}


def _outcome(history: list[tuple[str, str]]) -> str:
    if not history:
        return "The team finished without a message."
    source, content = history[-1]
    text = content.replace("TERMINATE", "").strip()
    return f"{source}: {text[:600]}" if text else f"Finished by {source}."
