"""A token-gated MCP server that the tests own, built with the ``mcp`` SDK's FastMCP.

It behaves like the servers users will configure (GitHub's ``github-mcp-server`` is the
model): started over stdio it refuses to run without its token in the environment, and a
wrong token makes every tool call fail with "401 Bad credentials"; served over streamable
HTTP it answers 401 to any request without the right bearer token. The app's MCP code
then meets the failures it will meet in production, through the real SDK on both ends.

Run it as::

    python -m tests.fakes.mcp_server --transport stdio
    python -m tests.fakes.mcp_server --transport http --port 0 --token T --calls-file F

stdio reads its settings from the environment, the way a server started from an
``mcpServers`` entry does: ``FAKE_MCP_TOKEN`` (required), ``FAKE_MCP_EXPECTED_TOKEN``
(when set, the only token that works), ``FAKE_MCP_CALLS`` and ``FAKE_MCP_PIDS`` (files to
append to) and ``FAKE_MCP_FAIL`` (``start``: exit 3 at once; ``hang``: never answer).
http prints ``listening on http://127.0.0.1:PORT/mcp`` once it accepts connections
(``--port 0`` lets the OS choose, so parallel tests cannot collide).

Every tool call appends one JSON line ``{"tool", "arguments", "pid", "token_ok"}`` to the
calls file, so tests can count calls across processes. The token never goes there: if it
appears in a tool's arguments it is written as ``[token]``, so a test still sees the leak.
``tests.fakes.mcp_process`` has the helpers tests use to start and inspect it.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import itertools
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from mcp.server.fastmcp import FastMCP
from starlette.types import ASGIApp, Receive, Scope, Send

MCP_PATH = "/mcp"
TOKEN_MARK = "[token]"
BAD_CREDENTIALS = "401 Bad credentials"
FAIL_MODES = ("", "start", "hang")
ISSUES = (
    (1, "Crash when the config file is empty", "open"),
    (2, "Document the --verbose flag", "open"),
    (3, "Release 1.0", "closed"),
)


@dataclass(frozen=True)
class ServerConfig:
    """What one server process was started with; ``token_ok`` decides every tool call."""

    token: str
    token_ok: bool
    calls_file: str | None


def build_server(config: ServerConfig) -> FastMCP:
    """The FastMCP server with the four tools; each call is recorded before it runs."""
    mcp = FastMCP("fake-git", log_level="WARNING")
    numbers = itertools.count(len(ISSUES) + 1)

    def begin(tool: str, arguments: dict[str, Any]) -> None:
        record_call(config, tool, arguments)
        if not config.token_ok:
            # FastMCP turns this into an isError result, as github-mcp-server reports a
            # token GitHub refused: "failed to ...: 401 Bad credentials". Careless on
            # purpose, as some servers are: it quotes the token it was given.
            raise PermissionError(f"{BAD_CREDENTIALS} (token {config.token} is not valid)")

    @mcp.tool(structured_output=False)
    def list_issues(repo: str) -> str:
        """List the issues of a repository ("owner/name")."""
        begin("list_issues", {"repo": repo})
        return "\n".join(f"{repo}#{n} [{state}] {title}" for n, title, state in ISSUES)

    @mcp.tool(structured_output=False)
    def create_issue(repo: str, title: str) -> str:
        """Open an issue in a repository."""
        begin("create_issue", {"repo": repo, "title": title})
        return f"created issue #{next(numbers)} in {repo}: {title}"

    @mcp.tool(structured_output=False)
    def leak_token() -> str:
        """Show the server's debug information."""
        begin("leak_token", {})
        # Deliberately wrong: a buggy server echoing its credentials, for redaction tests.
        return f"debug: authenticated with token {config.token}"

    @mcp.tool(structured_output=False)
    async def slow(seconds: float) -> str:
        """Wait ``seconds`` before answering."""
        begin("slow", {"seconds": seconds})
        await asyncio.sleep(seconds)
        return f"waited {seconds} s"

    return mcp


def record_call(config: ServerConfig, tool: str, arguments: dict[str, Any]) -> None:
    """Append one line to the calls file and flush it, so another process reads it now."""
    if not config.calls_file:
        return
    entry = {
        "tool": tool,
        "arguments": _without_token(arguments, config.token),
        "pid": os.getpid(),
        "token_ok": config.token_ok,
    }
    line = json.dumps(entry)
    with open(config.calls_file, "a", encoding="utf-8") as calls:
        calls.write(line + "\n")
        calls.flush()


def _without_token(value: Any, token: str) -> Any:
    """``value`` with every occurrence of ``token`` in its strings replaced by ``[token]``."""
    if isinstance(value, str):
        return value.replace(token, TOKEN_MARK) if token else value
    if isinstance(value, dict):
        return {_without_token(k, token): _without_token(v, token) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_token(v, token) for v in value]
    return value


class BearerGate:
    """ASGI middleware answering 401 to HTTP requests without the right bearer token.

    Lifespan events pass through, so FastMCP's session manager still starts and stops.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            body = json.dumps({"error": "unauthorized", "message": "Bad credentials"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b'Bearer realm="fake-mcp"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        values = [v for k, v in scope["headers"] if k.lower() == b"authorization"]
        return len(values) == 1 and hmac.compare_digest(values[0], self.expected)


class _AnnouncingServer(uvicorn.Server):
    """Prints the "listening" line only once the socket accepts connections."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"listening on {self.url}", flush=True)


def serve_http(port: int, token: str, calls_file: str | None) -> None:
    """Serve streamable HTTP on 127.0.0.1 until SIGTERM or SIGINT."""
    mcp = build_server(ServerConfig(token=token, token_ok=True, calls_file=calls_file))
    app = BearerGate(mcp.streamable_http_app(), token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}{MCP_PATH}"
    # A short graceful shutdown: an open SSE stream must not keep a test waiting.
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1
    )
    asyncio.run(_AnnouncingServer(config, url).serve(sockets=[sock]))


def serve_stdio(env: dict[str, str]) -> int:
    """Behave like a stdio server started from an ``mcpServers`` entry; returns the exit code."""
    pids_file = env.get("FAKE_MCP_PIDS")
    if pids_file:
        with open(pids_file, "a", encoding="utf-8") as pids:
            pids.write(f"{os.getpid()}\n")
    fail = env.get("FAKE_MCP_FAIL", "")
    if fail not in FAIL_MODES:
        print(f"fake-mcp: unknown FAKE_MCP_FAIL={fail!r}", file=sys.stderr, flush=True)
        return 2
    if fail == "start":
        print("fake-mcp: failed to start (FAKE_MCP_FAIL=start)", file=sys.stderr, flush=True)
        return 3
    token = env.get("FAKE_MCP_TOKEN", "")
    if not token:
        print("Error: FAKE_MCP_TOKEN not set", file=sys.stderr, flush=True)
        return 1
    if fail == "hang":
        # Never read stdin, never answer, and ignore its closing: only a signal ends it.
        while True:
            signal.pause()
    expected = env.get("FAKE_MCP_EXPECTED_TOKEN")
    token_ok = expected is None or hmac.compare_digest(token, expected)
    config = ServerConfig(token=token, token_ok=token_ok, calls_file=env.get("FAKE_MCP_CALLS"))
    build_server(config).run("stdio")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("stdio", "http"), required=True)
    parser.add_argument("--port", type=int, default=0, help="http: 0 lets the OS choose")
    parser.add_argument("--token", default="", help="http: the bearer token to require")
    parser.add_argument("--calls-file", default=None, help="http: where to record tool calls")
    args = parser.parse_args(argv)
    if args.transport == "stdio":
        return serve_stdio(dict(os.environ))
    if not args.token:
        parser.error("--transport http needs --token")
    serve_http(args.port, args.token, args.calls_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
