"""Fixtures of the live-reply tests (`tests.bot.live_env` has what they share besides)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

import bot.live_replies as live_replies
from store import Store
from store.settings import load_settings
from tests.bot.live_env import Env
from tests.fakes.slack_api import SlackApiEmulator


@pytest.fixture
async def env(tmp_path: Path, secret_key: str) -> AsyncIterator[Env]:
    store = await Store.open(
        load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/live.db", server_secret_key=secret_key
        )
    )
    try:
        async with SlackApiEmulator(member_channels={"C1", "C2"}) as slack:
            yield Env(store, slack, AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
    finally:
        await store.close()


@pytest.fixture
def unpaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """No waiting between a live reply's calls."""
    monkeypatch.setattr(live_replies, "APPEND_EVERY_S", 0.0)
    monkeypatch.setattr(live_replies, "UPDATE_EVERY_S", 0.0)
