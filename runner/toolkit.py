"""Every tool one claim of a run can use, put in the agents' hands at claim time.

Built per claim and closed with it: the ledger of the current turn's calls, the run's
credentials (read when a tool first needs one), the MCP sessions started for this claim,
and one `RunWorkbench` per agent that can call functions, holding the agent's own tools
(from TEAM_CONFIG), the runner's built-ins and the MCP servers' tools.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import Team
from autogen_core import CancellationToken
from autogen_core.tools import StaticWorkbench, Workbench

from runner.builtin_tools import builtin_entries, credential_entry
from runner.credential_source import RunCredentials
from runner.http_tools import http_entry, needs_filling
from runner.mcp_servers import McpServerSpec, McpSession
from runner.tool_calls import ToolLedger
from runner.workbench import RunWorkbench, ToolEntry, ToolOutput, ToolPolicy, call_workbench
from store import Store
from store.records import Run
from store.settings import Settings


class Toolkit:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        run: Run,
        secrets: contextlib.ExitStack,
        servers: list[McpServerSpec],
    ) -> None:
        self._settings = settings
        self.ledger = ToolLedger()
        self.credentials = RunCredentials(store, run, secrets)
        self._policy = ToolPolicy(settings)
        self._sessions = [McpSession(spec) for spec in servers]
        self._shared = [credential_entry(store, run, self.ledger), *builtin_entries(settings)]
        self._declared: list[Workbench] = []  # the agents' own, stopped with the claim
        self.workbenches: dict[str, RunWorkbench] = {}

    async def open(self) -> list[str]:
        """Start the MCP servers at once; what to tell the thread about those that failed."""
        timeout_s, call_timeout_s = (
            self._settings.mcp_start_timeout_s,
            self._settings.tool_timeout_s,
        )
        await asyncio.gather(
            *(
                session.start(self.credentials, timeout_s=timeout_s, call_timeout_s=call_timeout_s)
                for session in self._sessions
            )
        )
        return [session.problem for session in self._sessions if session.problem]

    async def equip(self, team: Team) -> None:
        """Give every assistant whose model can call functions its `RunWorkbench`. Agents
        whose model cannot are left as they are (AutoGen would refuse them tools)."""
        servers = [entry for session in self._sessions for entry in session.entries]
        for agent in list(getattr(team, "_participants", [])):  # no public accessor in 0.7
            if not isinstance(agent, AssistantAgent):
                continue
            if not agent._model_client.model_info.get("function_calling"):
                continue
            own = await self._own_entries(agent._workbench or [])
            workbench = RunWorkbench(
                agent.name,
                [*own, *self._shared, *servers],
                ledger=self.ledger,
                credentials=self.credentials,
                policy=self._policy,
                settings=self._settings,
            )
            agent._workbench = [workbench]
            self.workbenches[agent.name] = workbench

    async def _own_entries(self, workbenches: list[Workbench]) -> list[ToolEntry]:
        """The agent's TEAM_CONFIG tools as entries: HTTP tools with credential
        placeholders get their headers filled per call; the rest go through their own
        workbench unchanged."""
        entries: list[ToolEntry] = []
        for workbench in workbenches:
            self._declared.append(workbench)
            filled: set[str] = set()
            if isinstance(workbench, StaticWorkbench):
                for tool in workbench._tools:
                    if needs_filling(tool):
                        entries.append(http_entry(tool))  # type: ignore[arg-type]
                        filled.add(tool.name)
            for schema in await workbench.list_tools():
                if schema["name"] not in filled:
                    entries.append(
                        ToolEntry(schema, schema["name"], _through(workbench, schema["name"]))
                    )
        return entries

    async def close(self) -> None:
        """Stop every MCP session and declared workbench (their processes with them)."""
        await asyncio.gather(*(session.stop() for session in self._sessions))
        for workbench in self._declared:
            with contextlib.suppress(Exception):  # never started, or already stopped
                await workbench.stop()


def _through(workbench: Workbench, name: str) -> Any:
    async def run(
        arguments: dict[str, Any], token: CancellationToken, _secrets: Mapping[str, str]
    ) -> ToolOutput:
        result = await call_workbench(workbench, name, arguments)
        return ToolOutput(result.to_text(), is_error=result.is_error)

    return run
