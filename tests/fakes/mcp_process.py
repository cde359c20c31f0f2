"""Helpers for tests that run ``tests.fakes.mcp_server`` in its own process.

``stdio_server_config`` builds the ``mcpServers`` entry a user would configure (with a
credential placeholder where the token goes), ``http_mcp_server`` runs the HTTP variant
for the length of a test, and ``read_calls`` / ``alive_pids`` read back what the servers
recorded, so a test can count tool calls and check that no server outlived its run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_MODULE = "tests.fakes.mcp_server"
DEFAULT_PLACEHOLDER = "${credential:fakegit}"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


def stdio_server_config(
    calls_file: str | os.PathLike[str],
    pids_file: str | os.PathLike[str],
    token_placeholder: str | None = DEFAULT_PLACEHOLDER,
    **extra_env: str,
) -> dict[str, Any]:
    """An ``mcpServers`` entry starting the fake over stdio; ``None`` leaves the token out.

    ``cwd`` is the repository root so ``-m tests.fakes.mcp_server`` imports; ``PYTHONPATH``
    says the same, so the entry also works for a launcher that ignores ``cwd``. The MCP SDK
    passes a server only a few variables of its own (PATH, HOME, ...) plus ``env``.
    """
    env = {
        "FAKE_MCP_CALLS": str(calls_file),
        "FAKE_MCP_PIDS": str(pids_file),
        "PYTHONPATH": str(REPO_ROOT),
        **extra_env,
    }
    if token_placeholder is not None:
        env["FAKE_MCP_TOKEN"] = token_placeholder
    return {
        "command": sys.executable,
        "args": ["-m", SERVER_MODULE, "--transport", "stdio"],
        "env": env,
        "cwd": str(REPO_ROOT),
    }


@contextlib.asynccontextmanager
async def http_mcp_server(token: str, calls_file: str | os.PathLike[str]) -> AsyncIterator[str]:
    """Run the HTTP variant on a port the OS picks and yield its URL (``.../mcp``).

    Readiness is the server's own "listening" line, not a sleep. At exit the process gets
    SIGTERM, then SIGKILL if it has not stopped within a few seconds.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        SERVER_MODULE,
        "--transport",
        "http",
        "--port",
        "0",
        "--token",
        token,
        "--calls-file",
        str(calls_file),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield await _listening_url(process)
    finally:
        await _stop(process)


async def _listening_url(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(START_TIMEOUT_S):
        while line := await process.stdout.readline():
            text = line.decode().strip()
            if text.startswith("listening on "):
                return text.removeprefix("listening on ")
    raise RuntimeError(f"fake MCP server exited before listening (status {await process.wait()})")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


def read_calls(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The tool calls recorded so far, oldest first; none if the file does not exist."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def alive_pids(pids_file: str | os.PathLike[str]) -> list[int]:
    """The pids in ``pids_file`` whose process still runs (a zombie counts as gone)."""
    try:
        text = Path(pids_file).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [pid for pid in (int(p) for p in text.split()) if _running(pid)]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process took the pid: ours, run as us, is gone
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
