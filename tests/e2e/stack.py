"""The whole app over real HTTP: Bolt in HTTP mode, the Slack Web API emulator, the fake
OpenAI-compatible server, and requests signed exactly as Slack signs them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot import ids
from bot.server import serve
from store import Store
from store.records import Run
from store.settings import Settings, load_settings
from tests.db import all_runs
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_api import SlackApiEmulator
from tests.fakes.slack_emulator_base import DEFAULT_SCOPES
from tests.fakes.slack_signing import (
    SlackRequestSender,
    block_actions,
    slash_command,
    view_submission,
)

SIGNING_SECRET = "e2e-signing-secret-0123456789abcdef"
AGENT_MODEL = "agent-model"
VERIFIER_MODEL = "verifier-model"


def free_port() -> int:
    """A free port for the app to listen on, below the kernel's ephemeral range (where the
    fakes' own `bind(0)` ports come from) and in a range of its own per pytest-xdist
    worker, so no other test can take it between this check and the app's bind."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = 20_000 + 3_000 * (int(worker) % 4 if worker.isdigit() else 0)
    for port in random.sample(range(base, base + 3_000), 3_000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def text_of(message: dict[str, Any]) -> str:
    """Everything a reader sees in a message: its blocks (as JSON) and its fallback text."""
    return json.dumps(message.get("blocks") or []) + message.get("text", "")


def button(message: dict[str, Any], action_id: str) -> dict[str, Any] | None:
    """The first button whose action_id starts with `action_id`, in any block or accessory."""
    for block in message.get("blocks") or []:
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            if isinstance(element, dict) and element.get("action_id", "").startswith(action_id):
                return element
    return None


def assert_default_team_transcript(thread: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """The default team's thread after a key was added: the key notice without its button,
    planner, worker and reviewer in turn, each with a passing verdict, then the summary."""
    assert "openrouter key" in text_of(thread[0]), text_of(thread[0])
    assert button(thread[0], ids.CREDENTIAL_OPEN) is None
    agent_messages = [m for m in thread if "turn " in text_of(m)]
    assert [
        ("planner" in t, "worker" in t, "reviewer" in t) for t in map(text_of, agent_messages)
    ] == [(True, False, False), (False, True, False), (False, False, True)]
    assert all("Verifier: pass" in text_of(m) for m in agent_messages)
    assert thread[-1] is summary and "Completed" in text_of(summary)


async def assert_refused_not_in_channel(stack: Stack, channel: str) -> None:
    """`/autogen <task>` in `channel`, which the app is not in: Slack refused the root post
    (with HTTP 200 and `not_in_channel`, as Slack answers errors), nothing is in the
    channel, and the app kept no run."""
    (root_post,) = [
        c for c in stack.slack.calls_to("chat.postMessage") if c.params.get("channel") == channel
    ]
    assert (root_post.status, root_post.error) == (200, "not_in_channel"), root_post
    assert stack.slack.channel_messages(channel) == []
    assert await stack.stored_runs() == []


def app_settings(
    slack: SlackApiEmulator, llm: FakeLLMServer, tmp_path: Path, secret_key: str, **overrides: Any
) -> Settings:
    """Settings pointing the app at the emulator and the fake LLM, with test overrides."""
    values = {"slack_bot_token": slack.bot_token, "slack_api_url": slack.api_url}
    return e2e_settings(llm, tmp_path, secret_key, **values, **overrides)


def e2e_settings(
    llm: FakeLLMServer, tmp_path: Path, secret_key: str, *, db: str = "e2e.db", **overrides: Any
) -> Settings:
    """The app's settings in every end-to-end test: the fake LLM, a database in `tmp_path`,
    a port of its own; Slack's settings (or none: local mode) come in `overrides`."""
    values: dict[str, Any] = {
        "port": free_port(),
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/{db}",
        "server_secret_key": secret_key,
        "llm_base_url": llm.base_url,
        "llm_model": AGENT_MODEL,
        "verifier_model": VERIFIER_MODEL,
        "llm_max_retries": 0,
        "log_format": "console",
        # Replies appear whole unless a test streams them on purpose: with the fake model
        # answering at once, whether a reply is still being written when the publisher
        # looks would be a race (tests/e2e/test_streaming.py paces the model instead).
        "streaming": False,
    }
    values.update(overrides)
    return load_settings(**values)


@contextlib.asynccontextmanager
async def serving(settings: Settings, *, start_timeout_s: float = 20) -> AsyncIterator[None]:
    """Run `bot.server.serve` as the app's main would, until the block ends; a start-up
    error is raised here instead of hanging the test."""
    ready, stop = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(serve(settings, host="127.0.0.1", ready=ready, stop=stop))
    waiter = asyncio.create_task(ready.wait())
    try:
        done, _ = await asyncio.wait(
            {server, waiter}, timeout=start_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if server in done:
            server.result()  # raises the start-up error
        assert ready.is_set(), "the app did not start"
        yield
    finally:
        waiter.cancel()
        stop.set()
        await asyncio.wait_for(server, timeout=30)


def verdict(kind: str = "pass", reason: str = "Looks right.", actions: list | None = None) -> str:
    return json.dumps({"verdict": kind, "reason": reason, "suggested_actions": actions or []})


@dataclass
class Stack:
    slack: SlackApiEmulator
    llm: FakeLLMServer
    settings: Settings
    sender: SlackRequestSender
    url: str
    # The emulator's id (its key in `slack.responses`) of the response_url handed to the
    # latest command or click: each gets a fresh one, as from Slack.
    last_hook: str = ""

    async def command(
        self, text: str, user_id: str = "U1", channel_id: str = "C1", **kwargs: Any
    ) -> tuple[int, str, float]:
        body, content_type = slash_command(
            text=text,
            user_id=user_id,
            channel_id=channel_id,
            response_url=self._response_url(channel_id),
            **kwargs,
        )
        return await self.sender.post(self.url, body, content_type, SIGNING_SECRET)

    async def click(
        self, message: dict[str, Any], action_id: str, user_id: str, **kwargs: Any
    ) -> tuple[int, str, float]:
        body, content_type = block_actions(
            action_id=action_id,
            message=message,
            user_id=user_id,
            response_url=self._response_url(message.get("channel")),
            **kwargs,
        )
        return await self.sender.post(self.url, body, content_type, SIGNING_SECRET)

    def _response_url(self, channel: str | None) -> str:
        url = self.slack.new_response_url(channel=channel)
        self.last_hook = url.rsplit("/", 1)[1]
        return url

    async def reply(self, hook: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """The app's first post to one response_url, once it comes: by default to the
        latest command's or click's (pass `hook=stack.last_hook` saved earlier otherwise)."""
        hook = hook or self.last_hook
        posts = await self.slack.wait_for(lambda s: s.responses[hook], timeout=timeout)
        return posts[0]

    async def health(self) -> tuple[int, dict[str, Any]]:
        """`GET /healthz` on the app's HTTP port: (status, JSON body)."""
        url = f"http://127.0.0.1:{self.settings.port}/healthz"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.json()

    async def stored_runs(self) -> list[Run]:
        """Every run in the app's database, whatever its status."""
        store = await Store.open(self.settings)
        try:
            return await all_runs(store)
        finally:
            await store.close()

    async def submit(
        self, view: dict[str, Any], values: dict[str, Any], user_id: str
    ) -> tuple[int, str, float]:
        body, content_type = view_submission(view=view, state_values=values, user_id=user_id)
        return await self.sender.post(self.url, body, content_type, SIGNING_SECRET)

    def root(self, channel: str = "C1") -> dict[str, Any]:
        return self.slack.channel_messages(channel)[-1]

    def thread(self, channel: str = "C1") -> list[dict[str, Any]]:
        root = self.root(channel)
        return self.slack.thread(channel, root["ts"])


@contextlib.asynccontextmanager
async def running_stack(
    tmp_path: Path,
    secret_key: str,
    *,
    valid_keys: set[str],
    slack_scopes: Iterable[str] = DEFAULT_SCOPES,
    **settings_overrides: Any,
) -> AsyncIterator[Stack]:
    """The app in HTTP mode against the emulator (its bot token has `slack_scopes`) and the
    fake LLM, with test settings."""
    async with (
        SlackApiEmulator(member_channels={"C1"}, scopes=slack_scopes) as slack,
        FakeLLMServer(valid_keys=valid_keys) as llm,
        SlackRequestSender() as sender,
    ):
        settings = app_settings(
            slack,
            llm,
            tmp_path,
            secret_key,
            slack_signing_secret=SIGNING_SECRET,
            **settings_overrides,
        )
        async with serving(settings):
            yield Stack(
                slack, llm, settings, sender, f"http://127.0.0.1:{settings.port}/slack/events"
            )


@contextlib.asynccontextmanager
async def running_over(
    transport: str, tmp_path: Path, secret_key: str, *, key: str, **settings_overrides: Any
) -> AsyncIterator[Any]:
    """The app over `transport` ("http": signed requests; "socket": Socket Mode), with `key`
    as the workspace LLM key: the same test proves a flow over both."""
    if transport == "http":
        async with running_stack(
            tmp_path, secret_key, valid_keys={key}, llm_api_key=key, **settings_overrides
        ) as stack:
            yield stack
        return
    from tests.e2e.test_socket_mode import running_socket_stack  # it builds on this module

    async with running_socket_stack(
        tmp_path, secret_key, valid_keys={key}, llm_api_key=key, **settings_overrides
    ) as stack:
        yield stack


async def start_task(stack: Any, task: str) -> None:
    """`/autogen <task>` over the stack's transport, acknowledged with nothing to show."""
    if isinstance(stack, Stack):
        status, body, _ = await stack.command(task)
        assert (status, body) == (200, ""), body
    else:
        ack = await stack.command(task)
        assert ack == {"envelope_id": ack["envelope_id"]}, ack
