"""The fake MCP server must behave like a real token-gated one, seen through real clients.

Every test talks to ``tests.fakes.mcp_server`` in its own process through the ``mcp``
SDK's client or autogen-ext's ``McpWorkbench`` (what the app uses), so the fake's wire
format, its start failures and its token checks are the ones the app will meet.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from autogen_ext.tools.mcp import McpWorkbench, StdioServerParams, StreamableHttpServerParams
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError
from mcp.types import TextContent

from tests.fakes.mcp_process import (
    DEFAULT_PLACEHOLDER,
    alive_pids,
    http_mcp_server,
    read_calls,
    stdio_server_config,
)
from tests.fakes.mcp_server import BAD_CREDENTIALS

pytestmark = [
    pytest.mark.slow,
    # autogen-ext 0.7.5 still calls the SDK's deprecated streamablehttp_client; so do these
    # tests, on purpose, to meet the same code path.
    pytest.mark.filterwarnings("ignore:Use `streamable_http_client` instead:DeprecationWarning"),
]

TOKEN = "fake-git-token-0123456789"
TOOLS = {"list_issues", "create_issue", "leak_token", "slow"}
WAIT_S = 15.0


@pytest.fixture
def calls(tmp_path: Path) -> Path:
    return tmp_path / "calls.jsonl"


@pytest.fixture
def pids(tmp_path: Path) -> Path:
    return tmp_path / "pids.txt"


def stdio_params(
    calls: Path, pids: Path, token: str | None = TOKEN, **extra_env: str
) -> dict[str, Any]:
    """The config entry with the placeholder filled in, as the app will do it."""
    config = stdio_server_config(calls, pids, DEFAULT_PLACEHOLDER if token else None, **extra_env)
    if token:
        assert config["env"]["FAKE_MCP_TOKEN"] == DEFAULT_PLACEHOLDER
        config["env"]["FAKE_MCP_TOKEN"] = token
    return config


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def text_of(result: Any) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_stdio_with_token_lists_tools_and_records_calls(calls: Path, pids: Path) -> None:
    params = StdioServerParameters(**stdio_params(calls, pids))
    async with asyncio.timeout(WAIT_S), stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            issues = await session.call_tool("list_issues", {"repo": "octo/app"})
            created = await session.call_tool("create_issue", {"repo": "octo/app", "title": "Hi"})
            assert alive_pids(pids) != []

    assert {tool.name for tool in tools.tools} == TOOLS
    assert not issues.isError and "#1 [open]" in text_of(issues)
    assert text_of(created) == "created issue #4 in octo/app: Hi"
    recorded = read_calls(calls)
    assert [(c["tool"], c["arguments"], c["token_ok"]) for c in recorded] == [
        ("list_issues", {"repo": "octo/app"}, True),
        ("create_issue", {"repo": "octo/app", "title": "Hi"}, True),
    ]
    pid = recorded[0]["pid"]
    assert pids.read_text().split() == [str(pid)]
    assert alive_pids(pids) == []


async def test_stdio_without_token_exits_before_speaking_mcp(
    calls: Path, pids: Path, tmp_path: Path
) -> None:
    config = stdio_params(calls, pids, token=None)
    process = await asyncio.create_subprocess_exec(
        config["command"],
        *config["args"],
        env=config["env"],
        cwd=config["cwd"],
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT_S):
        stdout, stderr = await process.communicate()
    assert process.returncode == 1
    assert stdout == b""
    assert b"FAKE_MCP_TOKEN not set" in stderr

    errlog = (tmp_path / "stderr.txt").open("w+")
    params = StdioServerParameters(**config)
    with pytest.raises(BaseException) as raised:  # the SDK raises an exception group
        async with asyncio.timeout(WAIT_S), stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
    errors = list(leaves(raised.value))
    assert any(isinstance(e, McpError) and "Connection closed" in str(e) for e in errors), errors
    errlog.seek(0)
    assert "FAKE_MCP_TOKEN not set" in errlog.read()
    assert read_calls(calls) == []
    assert len(pids.read_text().split()) == 2
    assert alive_pids(pids) == []


async def test_stdio_fail_start_exits_with_status_3(calls: Path, pids: Path) -> None:
    config = stdio_params(calls, pids, FAKE_MCP_FAIL="start")
    process = await asyncio.create_subprocess_exec(
        config["command"],
        *config["args"],
        env=config["env"],
        cwd=config["cwd"],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT_S):
        stdout, stderr = await process.communicate()
    assert (process.returncode, stdout) == (3, b"")
    assert b"FAKE_MCP_FAIL=start" in stderr


async def test_stdio_hang_never_answers_and_is_killed_on_exit(calls: Path, pids: Path) -> None:
    params = StdioServerParameters(**stdio_params(calls, pids, FAKE_MCP_FAIL="hang"))
    with pytest.raises(BaseException) as raised:  # the SDK raises an exception group
        async with asyncio.timeout(WAIT_S), stdio_client(params) as (read, write):
            async with ClientSession(read, write, timedelta(seconds=0.5)) as session:
                await session.initialize()
    errors = list(leaves(raised.value))
    assert any(isinstance(e, McpError) and "Timed out" in str(e) for e in errors), errors
    # The hung server ignores its stdin closing: the SDK's SIGTERM is what ended it.
    assert len(pids.read_text().split()) == 1
    assert alive_pids(pids) == []


async def test_stdio_wrong_token_fails_every_call_like_github(calls: Path, pids: Path) -> None:
    params = StdioServerParameters(
        **stdio_params(calls, pids, token="wrong-token-1", FAKE_MCP_EXPECTED_TOKEN=TOKEN)
    )
    async with asyncio.timeout(WAIT_S), stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("list_issues", {"repo": "octo/app"})
    assert result.isError
    assert BAD_CREDENTIALS in text_of(result)
    assert [(c["tool"], c["token_ok"]) for c in read_calls(calls)] == [("list_issues", False)]
    assert "wrong-token-1" not in calls.read_text() and TOKEN not in calls.read_text()


async def test_leak_token_returns_the_token_but_the_calls_file_never_holds_it(
    calls: Path, pids: Path
) -> None:
    params = StdioServerParameters(**stdio_params(calls, pids))
    async with asyncio.timeout(WAIT_S), stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            leaked = await session.call_tool("leak_token", {})
            echoed = await session.call_tool(
                "create_issue", {"repo": "octo/app", "title": f"key {TOKEN}"}
            )
    assert TOKEN in text_of(leaked)
    assert not echoed.isError
    assert TOKEN not in calls.read_text()
    assert read_calls(calls)[1]["arguments"]["title"] == "key [token]"


async def test_http_with_the_right_bearer_works_and_records(calls: Path) -> None:
    async with http_mcp_server(TOKEN, calls) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            asyncio.timeout(WAIT_S),
            streamablehttp_client(url, headers=headers) as (
                read,
                write,
                _,
            ),
        ):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                result = await session.call_tool("slow", {"seconds": 0.01})
    assert {tool.name for tool in tools.tools} == TOOLS
    assert text_of(result) == "waited 0.01 s"
    assert [(c["tool"], c["token_ok"]) for c in read_calls(calls)] == [("slow", True)]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-1", f"Basic {TOKEN}"])
async def test_http_without_the_right_bearer_gets_401(
    calls: Path, authorization: str | None
) -> None:
    async with http_mcp_server(TOKEN, calls) as url:
        headers = {"Authorization": authorization} if authorization else {}
        async with httpx.AsyncClient(timeout=WAIT_S) as client:
            response = await client.post(
                url,
                headers={**headers, "Accept": "application/json, text/event-stream"},
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            )
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"] == "unauthorized"

        with pytest.raises(BaseException) as raised:  # the SDK raises an exception group
            async with (
                asyncio.timeout(WAIT_S),
                streamablehttp_client(url, headers=headers) as (
                    read,
                    write,
                    _,
                ),
            ):
                async with ClientSession(read, write) as session:
                    await session.initialize()
        errors = list(leaves(raised.value))
        assert any(
            isinstance(e, httpx.HTTPStatusError) and e.response.status_code == 401 for e in errors
        ), errors
    assert read_calls(calls) == []


async def test_http_server_stops_at_exit(calls: Path) -> None:
    async with http_mcp_server(TOKEN, calls) as url:
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 401
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url)


async def test_mcp_workbench_lists_and_calls_over_stdio(calls: Path, pids: Path) -> None:
    params = StdioServerParams(**stdio_params(calls, pids))
    async with asyncio.timeout(WAIT_S), McpWorkbench(params) as workbench:
        tools = await workbench.list_tools()
        result = await workbench.call_tool("create_issue", {"repo": "octo/app", "title": "Hi"})
    assert {tool["name"] for tool in tools} == TOOLS
    assert not result.is_error
    assert result.to_text() == "created issue #4 in octo/app: Hi"
    assert [c["tool"] for c in read_calls(calls)] == ["create_issue"]
    assert alive_pids(pids) == []


async def test_mcp_workbench_lists_and_calls_over_http(calls: Path) -> None:
    async with http_mcp_server(TOKEN, calls) as url:
        params = StreamableHttpServerParams(
            url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=WAIT_S
        )
        async with asyncio.timeout(WAIT_S), McpWorkbench(params) as workbench:
            tools = await workbench.list_tools()
            result = await workbench.call_tool("list_issues", {"repo": "octo/app"})
    assert {tool["name"] for tool in tools} == TOOLS
    assert not result.is_error and "#3 [closed] Release 1.0" in result.to_text()
    assert [c["tool"] for c in read_calls(calls)] == ["list_issues"]


async def test_mcp_workbench_when_the_server_exits_at_start(calls: Path, pids: Path) -> None:
    """What the app sees: ``start`` does not connect, the first call fails within about a
    second (no read timeout involved) and the actor stays dead; ``call_tool`` never raises,
    it returns an error result."""
    params = StdioServerParams(**stdio_params(calls, pids, token=None))
    async with asyncio.timeout(WAIT_S), McpWorkbench(params) as workbench:
        with pytest.raises(BaseException) as raised:  # the SDK raises an exception group
            await workbench.list_tools()
        after = await workbench.call_tool("list_issues", {"repo": "octo/app"})
    errors = list(leaves(raised.value))
    assert any(isinstance(e, McpError) and "Connection closed" in str(e) for e in errors), errors
    assert after.is_error and "not running" in after.to_text()
    assert alive_pids(pids) == []


def test_stdio_config_runs_from_any_directory(calls: Path, pids: Path) -> None:
    config = stdio_server_config(calls, pids)
    assert config["command"] == sys.executable
    assert config["args"] == ["-m", "tests.fakes.mcp_server", "--transport", "stdio"]
    assert config["env"]["FAKE_MCP_TOKEN"] == DEFAULT_PLACEHOLDER
    assert (Path(config["cwd"]) / "tests" / "fakes" / "mcp_server.py").is_file()
    assert config["env"]["PYTHONPATH"] == config["cwd"]
