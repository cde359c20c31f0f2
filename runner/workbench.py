"""The one door every tool call of a run goes through.

Each agent that can call functions gets a `RunWorkbench` in place of the workbenches its
JSON declared. It lists the agent's own tools, the runner's built-ins and the MCP servers'
tools, and on every call: holds back a call TOOL_APPROVAL names (the run asks a person),
resolves the credentials the tool declares (a missing one is asked for instead of making
the call), runs the tool, turns a refused key into a new request, scrubs every credential
from what the tool returned and records the call in the claim's ledger.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autogen_core import CancellationToken, Component
from autogen_core.tools import TextResultContent, ToolResult, ToolSchema, Workbench
from pydantic import BaseModel

from runner.credential_source import RunCredentials
from runner.redact import redact
from runner.tool_calls import Outcome, PendingApproval, ToolCallRecord, ToolLedger
from store.key_requests import KeyWanted
from store.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolOutput:
    text: str
    is_error: bool = False


class _Cancelled(Exception):
    """The run's token was cancelled during a tool call."""


class CredentialRefused(Exception):
    """The service behind a tool refused the key it was given (HTTP 401/403 and alike)."""

    def __init__(self, provider: str, detail: str) -> None:
        super().__init__(detail)
        self.provider = provider
        self.detail = detail


ToolFn = Callable[[dict[str, Any], CancellationToken, Mapping[str, str]], Awaitable[ToolOutput]]
"""Runs a tool: (arguments, cancellation token, credentials by provider) → output."""


@dataclass(frozen=True)
class ToolEntry:
    schema: ToolSchema  # its "name" is what the model calls
    qualified: str  # what people see and TOOL_APPROVAL matches ("github.create_issue")
    run: ToolFn
    needs: tuple[str, ...] = ()  # credential providers, resolved at call time
    gated: bool = True  # False: the runner's own plumbing, never held for approval

    @property
    def name(self) -> str:
        return self.schema["name"]


class ToolPolicy:
    """TOOL_APPROVAL: calls that wait for a person's yes; TOOL_AUTO_APPROVE: exceptions."""

    def __init__(self, settings: Settings) -> None:
        self._held = [p.lower() for p in settings.tool_approval]
        self._free = [p.lower() for p in settings.tool_auto_approve]

    def needs_approval(self, qualified: str) -> bool:
        name = qualified.lower()
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in self._held):
            return False
        return not any(fnmatch.fnmatchcase(name, pattern) for pattern in self._free)


MAX_REVIEWED_CHARS = 8_000  # arguments a person is shown in full before approving
HELD_FOR_APPROVAL = (
    "This call needs a person's approval before it runs. The run pauses after this turn and "
    "asks; you will be told the decision and, if approved, the result. Say briefly what "
    "the call is for and wait."
)
ONE_APPROVAL_PER_TURN = (
    "Another call in this turn is already waiting for approval; ask for this one after "
    "that decision."
)


class RunWorkbenchConfig(BaseModel):
    """What a dump of an equipped team says about its tools: names, never a credential."""

    agent: str
    tools: list[str]


class RunWorkbench(Workbench, Component[RunWorkbenchConfig]):
    """One agent's tools for one claim of a run. The MCP sessions behind some entries are
    owned by the claim's toolkit, so starting and stopping here do nothing."""

    component_config_schema = RunWorkbenchConfig
    component_provider_override = "runner.workbench.RunWorkbench"

    def __init__(
        self,
        agent: str,
        entries: Sequence[ToolEntry],
        *,
        ledger: ToolLedger,
        credentials: RunCredentials,
        policy: ToolPolicy,
        settings: Settings,
    ) -> None:
        self.agent = agent
        self._entries: dict[str, ToolEntry] = {}
        for entry in entries:  # the agent's own tools first: a later namesake does not win
            kept = self._entries.setdefault(entry.name, entry)
            if kept is not entry:
                log.warning("tool %s hides %s (same name)", kept.qualified, entry.qualified)
        self._ledger = ledger
        self._credentials = credentials
        self._policy = policy
        self._timeout_s = settings.tool_timeout_s
        self._max_chars = settings.tool_result_max_chars

    def entry(self, qualified: str) -> ToolEntry | None:
        return next((e for e in self._entries.values() if e.qualified == qualified), None)

    async def list_tools(self) -> list[ToolSchema]:
        return [entry.schema for entry in self._entries.values()]

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        cancellation_token: CancellationToken | None = None,
        call_id: str | None = None,
    ) -> ToolResult:
        entry = self._entries.get(name)
        args = dict(arguments or {})
        if entry is None:
            return _result(name, f"There is no tool named {name}.", is_error=True)
        record = ToolCallRecord(call_id or f"call-{id(args)}", entry.qualified, args)
        self._ledger.calls[record.call_id] = record
        if entry.gated and self._policy.needs_approval(entry.qualified):
            return self._hold(entry, record)
        text, is_error = await self.run_entry(entry, record, cancellation_token)
        return _result(name, text, is_error=is_error)

    def _hold(self, entry: ToolEntry, record: ToolCallRecord) -> ToolResult:
        size = len(json.dumps(record.arguments, ensure_ascii=False))
        if size > MAX_REVIEWED_CHARS:  # a person must be able to read all of what runs
            record.outcome, record.detail = Outcome.ERROR, "arguments too long to review"
            text = (
                f"This call needs a person's approval, and its arguments ({size} characters) "
                f"are too long to review (at most {MAX_REVIEWED_CHARS}). Make them shorter."
            )
            return _result(entry.name, text, is_error=True)
        record.outcome = Outcome.NEEDS_APPROVAL
        if self._ledger.approval is not None:
            record.detail = "another call was already waiting"
            return _result(entry.name, ONE_APPROVAL_PER_TURN, is_error=True)
        self._ledger.approval = PendingApproval(
            self.agent, entry.qualified, record.arguments, record.call_id
        )
        return _result(entry.name, HELD_FOR_APPROVAL, is_error=False)

    async def run_entry(
        self, entry: ToolEntry, record: ToolCallRecord, token: CancellationToken | None
    ) -> tuple[str, bool]:
        """Resolve the entry's credentials and run it; the text the agent reads (scrubbed,
        clipped) and whether it is an error. `record` gets the outcome."""
        secrets: dict[str, str] = {}
        for provider in entry.needs:
            value = await self._credentials.get(provider)
            if value is None:
                return self._missing(entry, record, provider), True
            secrets[provider] = value
        try:
            output = await self._until_cancelled(
                entry, record, token or CancellationToken(), secrets
            )
        except _Cancelled:
            record.outcome, record.detail = Outcome.ERROR, "cancelled: the run stopped"
            return "The call was cancelled: the run is stopping.", True
        except CredentialRefused as refused:  # its detail quotes the service: scrub it
            detail = redact(refused.detail, secrets.values())[:120]
            return self._refused(entry, record, refused.provider, detail), True
        except TimeoutError:
            record.outcome, record.detail = Outcome.ERROR, f"no answer in {self._timeout_s:g} s"
            return f"The tool did not answer within {self._timeout_s:g} s.", True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            summary = redact(f"{type(exc).__name__}: {exc}", secrets.values())[:300]
            log.warning("tool %s failed: %s", entry.qualified, summary)
            record.outcome, record.detail = Outcome.ERROR, summary[:120]
            return f"The tool failed: {summary}", True
        text = redact(output.text, [*secrets.values(), *self._credentials.values])
        record.size = len(text)
        if len(text) > self._max_chars:
            text = text[: self._max_chars] + f"\n[… cut at {self._max_chars} characters]"
        if output.is_error:
            record.outcome, record.detail = Outcome.ERROR, text[:120]
        return text, output.is_error

    async def _until_cancelled(
        self,
        entry: ToolEntry,
        record: ToolCallRecord,
        token: CancellationToken,
        secrets: dict[str, str],
    ) -> ToolOutput:
        """Run the tool until it answers, times out, or the run's token is cancelled.

        A cancelled run must not raise CancelledError out of a tool: AutoGen 0.7.5 runs an
        agent's tool calls in a task and waits for a sentinel that task puts last, so a call
        raising CancelledError leaves the agent (and the turn) waiting forever. The call is
        cancelled here instead and answers `_Cancelled`; the agent's next model call, tied
        to the same token, then ends the turn."""
        if token.is_cancelled():
            raise _Cancelled()
        call = asyncio.ensure_future(entry.run(record.arguments, CancellationToken(), secrets))
        stopped = asyncio.get_running_loop().create_future()
        token.add_callback(lambda: stopped.done() or stopped.set_result(None))
        try:
            done, _ = await asyncio.wait(
                {call, stopped}, timeout=self._timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
            if not call.done():
                call.cancel()
        if call in done:
            return call.result()
        if token.is_cancelled():
            raise _Cancelled()
        raise TimeoutError()

    def _missing(self, entry: ToolEntry, record: ToolCallRecord, provider: str) -> str:
        record.outcome, record.detail = Outcome.NEEDS_CREDENTIAL, f"no {provider} credential"
        self._ledger.want(KeyWanted(provider, f"The {entry.qualified} tool needs it."))
        return (
            f"The {provider} credential this tool needs is not stored. The run pauses after "
            "this turn and asks the requester for it privately; you will be told when it is "
            "available, then call the tool again."
        )

    def _refused(self, entry: ToolEntry, record: ToolCallRecord, provider: str, detail: str) -> str:
        record.outcome, record.detail = Outcome.KEY_REFUSED, f"the {provider} key was refused"
        self._credentials.forget(provider)
        reason = f"The {entry.qualified} tool's service refused the {provider} key that was used"
        self._ledger.want(KeyWanted(provider, f"{reason} ({detail}).", rejected=True))
        return (
            f"The service refused the {provider} key ({detail}). The run pauses "
            "after this turn and asks the requester for a valid one; you will be told when it "
            "is available, then call the tool again."
        )

    def _to_config(self) -> RunWorkbenchConfig:
        return RunWorkbenchConfig(
            agent=self.agent, tools=[entry.qualified for entry in self._entries.values()]
        )

    @classmethod
    def _from_config(cls, config: RunWorkbenchConfig) -> RunWorkbench:
        raise NotImplementedError("a run's workbench is built for each claim, not loaded")

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def reset(self) -> None:
        return None

    async def save_state(self) -> Mapping[str, Any]:
        return {}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        return None


async def call_workbench(workbench: Workbench, name: str, arguments: dict[str, Any]) -> ToolResult:
    """`workbench.call_tool` with a token of its own: autogen-ext 0.7.5's McpWorkbench links
    a coroutine (not a future) to the token it is given, so cancelling that token would
    raise AttributeError and skip the token's other callbacks. `RunWorkbench` cancels the
    call's task when the run's token is cancelled."""
    return await workbench.call_tool(name, arguments, CancellationToken())


def _result(name: str, text: str, *, is_error: bool) -> ToolResult:
    return ToolResult(name=name, result=[TextResultContent(content=text)], is_error=is_error)
