"""/healthz in HTTP mode: up means the database answers."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.stack import running_stack


async def test_healthz_reports_ok_with_the_run_counts(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys=set()) as stack:
        await stack.command("Summarise the thread")  # no key stored: it waits for one
        url = f"http://127.0.0.1:{stack.settings.port}/healthz"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            body = await response.json()
        assert body["ok"] is True and body["queued_runs"] >= 0 and body["active_runs"] >= 0


async def test_start_up_logs_no_notice_about_the_apps_own_client(
    tmp_path: Path,
    secret_key: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Docker's --env-file puts SLACK_BOT_TOKEN in the environment, where Bolt reads it
    too; it must not warn at every start that the token (already in our client) is unused."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    caplog.set_level(logging.INFO)
    async with running_stack(tmp_path, secret_key, valid_keys=set()):
        pass
    assert "will be unused" not in caplog.text
    assert any("web server on" in r.getMessage() for r in caplog.records)


async def test_healthz_answers_in_socket_mode_too(tmp_path: Path, secret_key: str) -> None:
    """A container probe needs /healthz whatever the mode: Socket Mode serves it on PORT."""
    from tests.e2e.test_socket_mode import running_socket_stack

    async with running_socket_stack(tmp_path, secret_key, valid_keys=set()) as stack:
        url = f"http://127.0.0.1:{stack.settings.port}/healthz"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                assert response.status == 200
                assert (await response.json())["ok"] is True
            async with session.post(f"http://127.0.0.1:{stack.settings.port}/slack/events") as post:
                assert post.status in (404, 405)  # Slack comes over the socket, not here
