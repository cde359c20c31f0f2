"""The app with its web API, over real HTTP and WebSockets, for the web tests: local mode
(no Slack setting) against the fake LLM, a client per API token, and what every test reads
back (events over the socket, the database's bytes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from store import Store
from store.settings import Settings
from store.tokens import LOCAL_WORKSPACE
from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL, e2e_settings, serving, verdict
from tests.fakes.llm_server import FakeLLMServer

KEY = "sk-web-user-key-7d1e9b3c"
TEAM_REPLIES = ["1. Pick a theme.", "Queues wait in line", "Good. TERMINATE"]


def local_settings(
    llm: FakeLLMServer, tmp_path: Path, secret_key: str, **overrides: Any
) -> Settings:
    """The app's test settings without any Slack setting: local mode."""
    return e2e_settings(llm, tmp_path, secret_key, db="web.db", **overrides)


async def make_token(
    settings: Settings, user_id: str, workspace_id: str = LOCAL_WORKSPACE
) -> tuple[str, str]:
    """(token id, token) made as `python -m store create-token` makes it."""
    store = await Store.open(settings, run_migrations=False)
    try:
        return await store.tokens.create(user_id=user_id, workspace_id=workspace_id)
    finally:
        await store.close()


@dataclass
class Answer:
    status: int
    body: Any
    text: str


@dataclass
class Client:
    """One API token's requests; every body it receives is kept (`texts`)."""

    base: str
    token: str | None
    session: aiohttp.ClientSession
    texts: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Answer:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if "data" not in kwargs:
            kwargs["json"] = body
        async with self.session.request(
            method, self.base + path, headers=headers, **kwargs
        ) as response:
            text = await response.text()
            self.texts.append(text)
            parsed = json.loads(text) if text and "json" in response.content_type else None
            return Answer(response.status, parsed, text)

    async def start(self, task: str = "Write a haiku about queues", **more: Any) -> str:
        answer = await self.call("POST", "/start-task", {"task": task, **more})
        assert answer.status == 201, answer
        assert answer.body["ws_url"] == self.ws_url(answer.body["task_id"])
        return answer.body["task_id"]

    def ws_url(self, task_id: str, after: int | None = None) -> str:
        url = self.base.replace("http://", "ws://") + f"/ws/{task_id}"
        return url if after is None else f"{url}?after={after}"

    @contextlib.asynccontextmanager
    async def follow(
        self, task_id: str, after: int | None = None
    ) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        async with self.session.ws_connect(
            self.ws_url(task_id, after), headers=self.headers, heartbeat=None
        ) as socket:
            yield socket

    async def events_until(
        self,
        socket: aiohttp.ClientWebSocketResponse,
        kind: str | None = None,
        *,
        count: int | None = None,
        timeout: float = 20,
    ) -> list[dict[str, Any]]:
        """Events off the socket until one of `kind` (or `count` of them, or the close)."""
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            async for message in socket:
                assert message.type == aiohttp.WSMsgType.TEXT, message
                self.texts.append(message.data)
                event = json.loads(message.data)
                received.append(event)
                if event["type"] == kind or (count is not None and len(received) == count):
                    break
        return received


@dataclass
class WebStack:
    llm: FakeLLMServer
    settings: Settings
    session: aiohttp.ClientSession
    base: str
    clients: list[Client] = field(default_factory=list)

    async def client(self, user_id: str | None, workspace_id: str = LOCAL_WORKSPACE) -> Client:
        token = (await make_token(self.settings, user_id, workspace_id))[1] if user_id else None
        client = Client(self.base, token, self.session)
        self.clients.append(client)
        return client

    def script_default_team(self) -> None:
        self.llm.script(AGENT_MODEL, TEAM_REPLIES)
        self.llm.script(VERIFIER_MODEL, [verdict(), verdict(), verdict()])

    def database_bytes(self) -> bytes:
        folder = Path(self.settings.database_url.split("///", 1)[1]).parent
        return b"".join(path.read_bytes() for path in sorted(folder.glob("web.db*")))


@contextlib.asynccontextmanager
async def running_web(
    tmp_path: Path, secret_key: str, *, valid_keys: set[str] | None = None, **overrides: Any
) -> AsyncIterator[WebStack]:
    """The app in local mode (the API, the WebSocket and the playground on 127.0.0.1)."""
    async with FakeLLMServer(valid_keys=valid_keys or {KEY}) as llm:
        settings = local_settings(llm, tmp_path, secret_key, **overrides)
        async with serving(settings), aiohttp.ClientSession() as session:
            yield WebStack(llm, settings, session, f"http://127.0.0.1:{settings.port}")
