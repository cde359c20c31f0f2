"""A runner with tools over real HTTP: the fake LLM, the fake search API and a small page
server, a one-agent team on the OpenAI client, and the RunManager driving it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from runner.llm import openai_verifier_factory
from runner.manager import RunManager
from runner.team_config import DEFAULT_TEAM_PATH
from store import Store
from store.crypto import Owner
from store.settings import Settings, load_settings
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.search_api import FakeSearchAPI

LLM_KEY = "sk-tools-llm-key-41c9"
AGENT, VERIFIER = "agent-model", "verifier-model"
RELEASE_NOTES = (
    "<html><head><title>Release notes</title></head>"
    "<body><p>Version 4.2 ships queues.</p></body></html>"
)
PASS = json.dumps({"verdict": "pass", "reason": "Fine.", "suggested_actions": []})


def tool_team_file(folder: Path, *, tools: list[dict[str, Any]] | None = None) -> Path:
    """The default team's worker alone (it reflects on tool results, two tool rounds per
    turn), ending on its own TERMINATE; `tools`: component JSON for its own workbench."""
    team = json.loads(DEFAULT_TEAM_PATH.read_text(encoding="utf-8"))
    worker = next(p for p in team["config"]["participants"] if p["config"]["name"] == "worker")
    worker["config"]["max_tool_iterations"] = 2
    if tools:
        worker["config"]["workbench"][0]["config"]["tools"] = tools
    team["config"]["participants"] = [worker]
    team["config"]["termination_condition"]["config"]["sources"] = ["worker"]
    path = folder / "tool-team.json"
    path.write_text(json.dumps(team), encoding="utf-8")
    return path


@dataclass
class Pages:
    """A local web server for fetch_url and HTTP tools: it counts and records requests."""

    url: str = ""
    hits: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append({"path": request.path, "headers": dict(request.headers)})
        if request.path == "/slow":  # answers after the test has moved on
            await asyncio.sleep(5)
        if self.status != 200:
            return web.json_response({"error": "no"}, status=self.status)
        if request.path.startswith("/api/"):
            return web.json_response({"issues": ["#1 Flaky deploy", "#2 Slow search"]})
        return web.Response(text=RELEASE_NOTES, content_type="text/html")


@contextlib.asynccontextmanager
async def serving_pages() -> AsyncIterator[Pages]:
    pages = Pages()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", pages.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    pages.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield pages
    finally:
        await runner.cleanup()


@dataclass
class ToolStack:
    llm: FakeLLMServer
    search: FakeSearchAPI
    pages: Pages
    store: Store
    runs: RunManager
    settings: Settings

    async def give(self, provider: str, value: str, user_id: str = "UREQ") -> None:
        """Store `value` as `user_id`'s `provider` credential, as they would."""
        await self.store.credentials.put(Owner("T1", user_id, provider), value, actor_id=user_id)


def stack_settings(
    tmp_path: Path, secret_key: str, llm: FakeLLMServer, search: FakeSearchAPI, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/tools.db",
        "server_secret_key": secret_key,
        "llm_base_url": llm.base_url,
        "llm_model": AGENT,
        "verifier_model": VERIFIER,
        "llm_max_retries": 0,
        "openrouter_api_key": LLM_KEY,
        "web_search_url": search.base_url,
    }
    values.update(overrides)
    if "team_config" not in values:  # (setdefault would write the file anyway)
        values["team_config"] = str(tool_team_file(tmp_path))
    return load_settings(**values)


@contextlib.asynccontextmanager
async def tool_stack(
    tmp_path: Path,
    secret_key: str,
    *,
    search_keys: set[str] | None = None,
    team_tools: Callable[[Pages], list[dict[str, Any]]] | None = None,
    **overrides: Any,
) -> AsyncIterator[ToolStack]:
    """`team_tools`: the worker's own tools (component JSON), made once the page server's
    address is known."""
    async with (
        FakeLLMServer(valid_keys={LLM_KEY}) as llm,
        FakeSearchAPI(valid_keys=search_keys or set()) as search,
        serving_pages() as pages,
    ):
        llm.default(VERIFIER, PASS)
        if team_tools is not None:
            overrides["team_config"] = str(tool_team_file(tmp_path, tools=team_tools(pages)))
        settings = stack_settings(tmp_path, secret_key, llm, search, **overrides)
        store = await Store.open(settings)
        runs = RunManager(
            store,
            settings,
            verifier_client_factory=openai_verifier_factory(settings),
            poll_interval_s=0.05,
        )
        await runs.start()
        try:
            yield ToolStack(llm, search, pages, store, runs, settings)
        finally:
            await runs.stop(grace_s=10)
            await store.close()


def last_user_text(request_json: dict[str, Any]) -> str:
    """Everything the model was sent in one request, as text (to look for what it read)."""
    return json.dumps(request_json["messages"], ensure_ascii=False)
