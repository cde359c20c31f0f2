"""MCP servers from MCP_CONFIG, started for one claim of a run with the run's credentials.

MCP_CONFIG holds the `mcpServers` object MCP clients share: stdio servers (`command`,
`args`, `env`, `cwd`) and streamable-HTTP servers (`url`, `headers`). It is read and checked
once at start-up. For each claim, every server whose `${credential:NAME}` placeholders can be
filled from the requester's (or the workspace's) credentials is started through autogen-ext's
`McpWorkbench` and its tools listed; a server that fails to start or to list its tools is
reported, not waited for. A server whose credential is missing is offered to the agents as a
single `<server>__connect` tool that asks for it. Every session is stopped when the claim
ends, so no stdio process outlives the run's time on this replica.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from autogen_core import CancellationToken
from autogen_core.tools import ParametersSchema, ToolSchema

from runner.credential_source import RunCredentials
from runner.placeholders import PlaceholderError, credentials_named, env_named, fill
from runner.redact import always_hide, redact
from runner.team_config import TeamConfigError
from runner.workbench import CredentialRefused, ToolEntry, ToolOutput, call_workbench
from store.settings import Settings, environment_value

if TYPE_CHECKING:  # the MCP SDK costs 0.25 s to import: only a run with servers loads it
    from autogen_ext.tools.mcp import McpWorkbench, StdioServerParams, StreamableHttpServerParams

log = logging.getLogger(__name__)

SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
TOOL_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
MAX_TOOL_NAME = 64  # OpenAI's limit on function names
STOP_TIMEOUT_S = 5.0
# How servers say a token is bad in a tool result (GitHub: "401 Bad credentials").
REFUSED_KEY = re.compile(r"\b(401|403)\b|unauthori[sz]ed|bad credentials|invalid token", re.I)


class McpConfigError(TeamConfigError):
    """MCP_CONFIG cannot be used; the message is one line for the operator (no values)."""


@dataclass(frozen=True)
class McpServerSpec:
    name: str
    config: dict[str, Any]  # the file's entry, placeholders unfilled

    @property
    def needs(self) -> list[str]:
        return credentials_named(self.config)

    @property
    def is_stdio(self) -> bool:
        return "command" in self.config


def read_mcp_config(settings: Settings) -> list[McpServerSpec]:
    path = settings.mcp_config
    if path is None:
        return []
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise McpConfigError(f"MCP_CONFIG {path} could not be read: {exc}") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise McpConfigError(f'MCP_CONFIG {path} needs an "mcpServers" object')
    return [_spec(path, name, entry) for name, entry in servers.items()]


def _spec(path: Path, name: str, entry: Any) -> McpServerSpec:
    where = f"MCP_CONFIG {path}, server {name!r}"
    if not SERVER_NAME.fullmatch(name):
        raise McpConfigError(f"{where}: names are letters, digits, _ or - (at most 32)")
    if not isinstance(entry, dict) or ("command" in entry) == ("url" in entry):
        raise McpConfigError(f'{where}: give either "command" (stdio) or "url" (HTTP)')
    shapes = {"command": str, "cwd": str, "url": str, "args": list, "env": dict, "headers": dict}
    for key, kind in shapes.items():
        if key in entry and not isinstance(entry[key], kind):
            raise McpConfigError(f"{where}: {key!r} must be a {kind.__name__}")
    strings = [*entry.get("args", []), *entry.get("env", {}).values()]
    strings += list(entry.get("headers", {}).values())
    if not all(isinstance(value, str) for value in strings):
        raise McpConfigError(f"{where}: args, env and headers hold strings only")
    if "url" in entry and not entry["url"].startswith(("http://", "https://")):
        raise McpConfigError(f"{where}: url must be http:// or https://")
    for variable in env_named(entry):
        value = environment_value(variable)
        if value is None:
            raise McpConfigError(f"{where}: environment variable {variable} is not set")
        always_hide(value)  # it goes to the server only, like a stored credential
    for key in ("command", "args", "cwd", "url"):  # argv and URLs show in ps and in logs
        if credentials_named(entry.get(key)):
            raise McpConfigError(f"{where}: ${{credential:...}} goes in env or headers, not {key}")
    timeout = entry.get("timeout_s", 1)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise McpConfigError(f"{where}: timeout_s must be a positive number of seconds")
    known = {"command", "args", "env", "cwd", "url", "headers", "type", "timeout_s"}
    return McpServerSpec(name, {key: value for key, value in entry.items() if key in known})


@dataclass
class McpSession:
    """One server for one claim: started or not, and the tools it offers the agents."""

    spec: McpServerSpec
    entries: list[ToolEntry] = field(default_factory=list)
    problem: str | None = None  # why it is not available, in words for the thread
    _workbench: McpWorkbench | None = None

    async def start(
        self, credentials: RunCredentials, *, timeout_s: float, call_timeout_s: float
    ) -> None:
        missing = [p for p in self.spec.needs if await credentials.get(p) is None]
        if missing:
            self.entries = [_connect_entry(self.spec, missing)]
            return
        secrets = {p: value for p in self.spec.needs if (value := await credentials.get(p))}
        try:
            filled = fill(self.spec.config, credentials=secrets, environment=environment_value)
            params = _server_params(filled, call_timeout_s=call_timeout_s)
        except (PlaceholderError, ValueError) as exc:  # pydantic's errors are ValueErrors
            self.problem = f"The {self.spec.name} MCP server is not configured right ({exc})."
            return
        from autogen_ext.tools.mcp import McpWorkbench

        workbench = McpWorkbench(params)
        self._workbench = workbench
        try:
            async with asyncio.timeout(timeout_s):
                tools = await workbench.list_tools()
        except Exception as exc:  # includes TimeoutError: a server that never answers
            await self.stop(force=True)
            cause = _cause(exc)
            if self.spec.needs and _refused_status(cause) is not None:
                status = _refused_status(cause)
                self.entries = [_connect_entry(self.spec, self.spec.needs, refused=status)]
            reason = _reason(cause, secrets.values())
            self.problem = (
                f"The {self.spec.name} MCP server could not be started, so its tools are not "
                f"available in this run ({reason})."
            )
            log.warning("MCP server %s failed to start: %s", self.spec.name, reason)
            return
        self.entries = [self._entry(tool) for tool in tools]

    def _entry(self, tool: ToolSchema) -> ToolEntry:
        original = tool["name"]
        server = self.spec.name
        needs = tuple(self.spec.needs)
        workbench = self._workbench

        async def run(
            arguments: dict[str, Any], token: CancellationToken, _: Mapping[str, str]
        ) -> ToolOutput:
            if workbench is None:
                return ToolOutput(f"The {server} MCP server is not running.", is_error=True)
            result = await call_workbench(workbench, original, arguments)
            text = result.to_text()
            if result.is_error and needs and REFUSED_KEY.search(text):
                raise CredentialRefused(needs[0], text.strip()[:120])
            return ToolOutput(text, is_error=result.is_error)

        schema = ToolSchema(
            name=_tool_name(server, original),
            description=(tool.get("description") or "")[:1000],
            parameters=tool.get("parameters") or ParametersSchema(type="object", properties={}),
        )
        return ToolEntry(schema, f"{server}.{original}", run, needs)

    async def stop(self, *, force: bool = False) -> None:
        """Stop the session (and its process); safe to call twice or after a failed start.
        `force`, or a session that does not stop within STOP_TIMEOUT_S (a server stuck in
        its start never reads the polite shutdown): its task is cancelled, which still
        closes the connection and ends the process."""
        workbench, self._workbench = self._workbench, None
        if workbench is None:
            return
        actor = getattr(workbench, "_actor", None)
        if actor is not None:  # autogen-ext registers every session with atexit for good
            atexit.unregister(actor._sync_shutdown)
        task = getattr(actor, "_actor_task", None)
        if not force:
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await workbench.stop()
                return
            except TimeoutError:
                log.warning("MCP server %s did not stop in time", self.spec.name)
            except Exception as exc:
                log.warning("MCP server %s stopped badly (%s)", self.spec.name, type(exc).__name__)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)


def _cause(exc: BaseException) -> BaseException:
    """The MCP client wraps a failure in task-group exception groups (twice, for a server
    that exits at once): the cause itself."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _refused_status(exc: BaseException) -> int | None:
    """401 or 403 from an HTTP server: the key in its headers was refused."""
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (401, 403):
        return exc.response.status_code
    return None


def _reason(exc: BaseException, secrets: Iterable[str]) -> str:
    """A failed start in a few words, never a credential."""
    if isinstance(exc, TimeoutError):
        return "it did not answer in time"
    text = str(exc).strip()
    summary = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return redact(summary, secrets)[:200]


def _server_params(
    config: dict[str, Any], *, call_timeout_s: float
) -> StdioServerParams | StreamableHttpServerParams:
    """autogen-ext's parameters; a stdio session's read timeout bounds every request,
    tool calls included, so it is the tool timeout (TOOL_TIMEOUT_S) unless set here."""
    from autogen_ext.tools.mcp import StdioServerParams, StreamableHttpServerParams

    timeout = float(config.get("timeout_s", call_timeout_s))
    if "command" in config:
        return StdioServerParams(
            command=config["command"],
            args=list(config.get("args", [])),
            env=dict(config.get("env", {})) or None,
            cwd=config.get("cwd"),
            read_timeout_seconds=timeout,
        )
    return StreamableHttpServerParams(
        url=config["url"], headers=dict(config.get("headers", {})) or None, timeout=timeout
    )


def _tool_name(server: str, tool: str) -> str:
    name = TOOL_NAME_CHARS.sub("_", f"{server}__{tool}")
    return name[:MAX_TOOL_NAME]


def _connect_entry(
    spec: McpServerSpec, missing: list[str], refused: int | None = None
) -> ToolEntry:
    """The stand-in for a server that cannot start without a credential nobody gave yet
    (`missing`: asked for when it is called), or whose credential it refused at start
    (`refused`: the HTTP status; asked for again, as refused, when it is called)."""
    names = " and ".join(missing)

    async def run(
        _arguments: dict[str, Any], _token: CancellationToken, _secrets: Mapping[str, str]
    ) -> ToolOutput:
        if refused is not None:
            raise CredentialRefused(missing[0], f"the {spec.name} MCP server answered {refused}")
        return ToolOutput(f"The {spec.name} tools are connected from the next turn on.")

    schema = ToolSchema(
        name=_tool_name(spec.name, "connect"),
        description=(
            f"Connect the {spec.name} tools (an MCP server). They need the requester's {names} "
            f"credential, which is {'not valid' if refused else 'not stored yet'}: call this to "
            f"ask for it privately. Once it is there, the {spec.name} tools themselves appear."
        ),
        parameters=ParametersSchema(type="object", properties={}),
    )
    needs = () if refused is not None else tuple(missing)
    return ToolEntry(schema, f"{spec.name}.connect", run, needs, gated=False)
