"""HTTP tools from TEAM_CONFIG (autogen-ext's declarative `HttpTool`) whose headers carry
`${credential:NAME}`: the header is filled for each call, never in the tool's config.

autogen-ext's own `HttpTool.run` sends the headers it was built with and returns any answer
as text, a 401 included; this runs the same request from the tool's config with the
headers filled in, and tells a refused key (401/403) from other failures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from autogen_core import CancellationToken
from autogen_ext.tools.http import HttpTool

from runner.placeholders import credentials_named, env_named, fill
from runner.redact import always_hide
from runner.workbench import CredentialRefused, ToolEntry, ToolOutput
from store.settings import environment_value

BODY_METHODS = ("POST", "PUT", "PATCH")
SHOWN_ERROR_CHARS = 500
MAX_BODY_BYTES = 2_000_000


def needs_filling(tool: object) -> bool:
    return isinstance(tool, HttpTool) and bool(credentials_named(tool.server_params.headers))


def http_entry(tool: HttpTool) -> ToolEntry:
    params = tool.server_params
    needs = tuple(credentials_named(params.headers))
    for variable in env_named(params.headers):  # sent like a credential: hidden like one
        value = environment_value(variable)
        if value is not None:
            always_hide(value)

    async def run(
        arguments: dict[str, Any], token: CancellationToken, secrets: Mapping[str, str]
    ) -> ToolOutput:
        values = tool.args_type().model_validate(arguments).model_dump()
        path_values = {k: values.pop(k) for k in tool._path_params if k in values}
        url = httpx.URL(
            scheme=params.scheme,
            host=params.host,
            port=params.port,
            path=params.path.format(**path_values),
        )
        headers = fill(params.headers or {}, credentials=secrets, environment=environment_value)
        method = params.method or "POST"
        body = {"json": values} if method in BODY_METHODS else {"params": values}
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(params.timeout)) as client,
            client.stream(method, url, headers=headers, **body) as response,
        ):
            text = await _read_capped(response)
        if response.status_code in (401, 403):
            raise CredentialRefused(needs[0], f"HTTP {response.status_code}")
        if response.status_code >= 400:
            return ToolOutput(f"HTTP {response.status_code}: {text[:SHOWN_ERROR_CHARS]}", True)
        return ToolOutput(text)

    return ToolEntry(tool.schema, tool.name, run, needs)


async def _read_capped(response: httpx.Response) -> str:
    """The body as text, read no further than MAX_BODY_BYTES (the agent reads less)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES:
            break
    return b"".join(chunks)[:MAX_BODY_BYTES].decode(response.encoding or "utf-8", "replace")
