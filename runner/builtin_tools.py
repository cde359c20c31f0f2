"""The runner's own tools: `request_credential` for every agent that can call functions,
and the built-ins TOOLS selects (`fetch_url`, `web_search`), so a fresh install does real
work without any MCP server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autogen_core import CancellationToken
from autogen_core.tools import ParametersSchema, ToolSchema

from runner.builtins.fetch import FetchFailed, FetchLimits, FetchRefused, fetch_url
from runner.builtins.web_search import SearchFailed, SearchKeyRefused, answer_text, web_search
from runner.tool_calls import ToolLedger
from runner.workbench import CredentialRefused, ToolEntry, ToolOutput
from store import Store
from store.credentials import WORKSPACE_USER
from store.crypto import Owner
from store.key_requests import KeyWanted
from store.records import Run
from store.settings import Settings

SEARCH_PROVIDER = "tavily"


def _schema(
    name: str, description: str, properties: dict[str, Any], required: list[str]
) -> ToolSchema:
    return ToolSchema(
        name=name,
        description=description,
        parameters=ParametersSchema(type="object", properties=properties, required=required),
    )


def credential_entry(store: Store, run: Run, ledger: ToolLedger) -> ToolEntry:
    """`request_credential(provider, reason)`: says whether a key exists, never its value.
    A missing key is only noted; the run pauses at the end of the turn (a team cannot be
    saved mid-turn), asks the requester privately and resumes when it arrives."""

    async def run_tool(
        arguments: dict[str, Any], _token: CancellationToken, _secrets: Mapping[str, str]
    ) -> ToolOutput:
        name = str(arguments.get("provider", "")).strip().lower()[:64] or "unknown"
        reason = str(arguments.get("reason", "")).strip()[:500] or "An agent needs it."
        for user_id in (run.requester_id, WORKSPACE_USER):
            if await store.credentials.exists(Owner(run.workspace_id, user_id, name)):
                return ToolOutput(
                    f"A {name} credential is available; tools that need it will read it."
                )
        ledger.want(KeyWanted(name, reason))
        return ToolOutput(
            f"No {name} credential is stored. The run pauses after this turn and asks the "
            "requester for it privately; you will be told when it is available."
        )

    schema = _schema(
        "request_credential",
        "Ask the person who started this run for a credential (API key) for a provider. "
        "Returns only whether it is available, never the value.",
        {
            "provider": {"type": "string", "description": "e.g. github, tavily"},
            "reason": {"type": "string", "description": "why the run needs it"},
        },
        ["provider", "reason"],
    )
    return ToolEntry(schema, "request_credential", run_tool, gated=False)


def fetch_entry(settings: Settings) -> ToolEntry:
    limits = FetchLimits(
        max_bytes=settings.fetch_max_bytes,
        timeout_s=settings.fetch_timeout_s,
        max_chars=settings.tool_result_max_chars,
    )

    async def run_tool(
        arguments: dict[str, Any], _token: CancellationToken, _secrets: Mapping[str, str]
    ) -> ToolOutput:
        url = str(arguments.get("url", "")).strip()
        try:
            page = await fetch_url(url, limits=limits, allow_private=settings.fetch_allow_private)
        except (FetchRefused, FetchFailed) as exc:
            return ToolOutput(str(exc), is_error=True)
        note = " (cut: the page is longer)" if page.truncated else ""
        return ToolOutput(f"{page.url} ({page.content_type}){note}\n\n{page.text}")

    schema = _schema(
        "fetch_url",
        "Fetch a public web page or text document (http or https) and return its readable "
        "text. Private and internal addresses are refused.",
        {"url": {"type": "string", "description": "the absolute http(s) URL"}},
        ["url"],
    )
    return ToolEntry(schema, "fetch_url", run_tool)


def search_entry(settings: Settings) -> ToolEntry:
    async def run_tool(
        arguments: dict[str, Any], _token: CancellationToken, secrets: Mapping[str, str]
    ) -> ToolOutput:
        query = str(arguments.get("query", "")).strip()[:400]
        if not query:
            return ToolOutput("Give a search query.", is_error=True)
        count = arguments.get("max_results", 5)
        count = min(max(count, 1), 10) if isinstance(count, int) else 5
        try:
            answer = await web_search(
                query,
                api_key=secrets[SEARCH_PROVIDER],
                base_url=settings.web_search_url,
                max_results=count,
                timeout_s=settings.fetch_timeout_s,
            )
        except SearchKeyRefused as exc:
            raise CredentialRefused(SEARCH_PROVIDER, str(exc)) from None
        except SearchFailed as exc:
            return ToolOutput(str(exc), is_error=True)
        return ToolOutput(answer_text(answer, max_chars=settings.tool_result_max_chars))

    schema = _schema(
        "web_search",
        "Search the web (Tavily). Returns a short answer and the top results with their URLs; "
        "use fetch_url to read a result in full.",
        {
            "query": {"type": "string", "description": "what to search for"},
            "max_results": {"type": "integer", "description": "1 to 10, default 5"},
        },
        ["query"],
    )
    return ToolEntry(schema, "web_search", run_tool, (SEARCH_PROVIDER,))


def builtin_entries(settings: Settings) -> list[ToolEntry]:
    makers = {"fetch_url": fetch_entry, "web_search": search_entry}
    return [makers[name](settings) for name in dict.fromkeys(settings.tools)]
