"""/healthz in HTTP mode: up means the database answers."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.e2e.stack import running_stack


async def test_healthz_reports_ok_with_the_run_counts(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys=set()) as stack:
        await stack.command("Summarise the thread")  # no key stored: it waits for one
        url = f"http://127.0.0.1:{stack.settings.port}/healthz"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            body = await response.json()
        assert body["ok"] is True and body["queued_runs"] >= 0 and body["active_runs"] >= 0
