"""The playground at its edges and the server's lifecycle: a long transcript shown at once,
focus kept for a keyboard user, a phone's page following the transcript, a clean sign-in
after a session ends, every run reachable, readable outcomes; no WebSocket request line in
the log, a failed start closing what it opened, an unreachable database in one line, the
README's one line on stdout, and a second Ctrl-C stopping at once. Browser tests drive the
distribution's Chromium with Playwright, as test_playground_browser does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runner.manager import RunManager
from store import Store
from store.events import NewEvent
from store.settings import load_settings
from tests.conftest import PROJECT_ROOT
from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL, free_port, serving, verdict
from tests.fakes.llm_server import FakeLLMServer
from tests.web.stack import KEY, WebStack, local_settings, running_web
from tests.web.test_playground_browser import chromium_path

LINK = re.compile(r"open (http://127\.0\.0\.1:\d+/login\?code=\S+)")


async def _append(stack: WebStack, task_id: str, events: list[NewEvent]) -> None:
    """Events written into a run's log as the runner writes them (the follower polls)."""
    store = await Store.open(stack.settings, run_migrations=False)
    try:
        async with store.work() as work:
            await work.append(task_id, events)
    finally:
        await store.close()


def _infos(prefix: str, count: int) -> list[NewEvent]:
    return [NewEvent("info", {"text": f"{prefix} {i} " + "word " * 12}) for i in range(count)]


@contextlib.asynccontextmanager
async def _signed_in_page(
    stack: WebStack, printed: str, viewport: dict[str, int] | None = None
) -> AsyncIterator[Any]:
    """A headless Chromium page signed in through the printed one-time link."""
    from playwright.async_api import async_playwright, expect

    link = LINK.search(printed)
    assert link, printed
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page(viewport=viewport or {"width": 1280, "height": 800})
            await page.goto(link.group(1))
            await expect(page.locator("#workspace")).to_be_visible()
            yield page
        finally:
            await browser.close()


# --- the playground page -------------------------------------------------------------------


COUNT_LAYOUT_READS = """() => {
  window.layoutReads = 0;
  const real = Object.getOwnPropertyDescriptor(Element.prototype, "scrollHeight");
  Object.defineProperty(Element.prototype, "scrollHeight", {
    configurable: true,
    get() { window.layoutReads += 1; return real.get.call(this); },
  });
}"""


async def test_a_long_transcript_reads_the_layout_per_frame_not_per_event(
    tmp_path: Path, secret_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading the layout after every appended node costs a layout each (3,000 events
    replayed took seconds that way): the page reads it once per frame instead. Counted,
    not timed: the reads of `scrollHeight` while 3,000 events are shown."""
    from playwright.async_api import expect

    count = 3000
    async with running_web(tmp_path, secret_key) as stack:
        me = await stack.client("playground")
        task_id = await me.start("A long run")
        await _append(stack, task_id, _infos("line", count))
        async with _signed_in_page(stack, capsys.readouterr().out) as page:
            await page.evaluate(COUNT_LAYOUT_READS)
            await page.locator("#run-list button").first.click()
            await expect(page.locator("#transcript .info-line")).to_have_count(
                count, timeout=60_000
            )
            reads = await page.evaluate("window.layoutReads")
        assert reads < count / 10, f"{reads} layout reads for {count} events"


async def test_stopping_with_the_keyboard_keeps_the_focus_in_the_run(
    tmp_path: Path, secret_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.async_api import expect

    async with running_web(tmp_path, secret_key) as stack:
        me = await stack.client("playground")
        await me.start("Something to stop")
        async with _signed_in_page(stack, capsys.readouterr().out) as page:
            await page.locator("#run-list button").first.press("Enter")
            await expect(page.locator("#credential-dialog")).to_be_visible()
            await page.keyboard.press("Escape")  # no key now; the run is to be stopped
            await expect(page.locator("#credential-dialog")).to_be_hidden()
            await page.locator("#stop-button").focus()
            await page.keyboard.press("Enter")
            await expect(page.locator("#run-status")).to_contain_text("finished")
            focused = await page.evaluate("document.activeElement === document.body")
        assert not focused, "the focus fell to the page's start"


async def test_a_stop_answered_after_the_runs_end_still_shows_the_end(
    tmp_path: Path, secret_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The `finished` event can come over the socket before the answer to Stop's request
    (seen on a loaded CI machine): the status line keeps the end, not "stopping…". The
    answer is held here until the end is shown, so the order is the late one every time."""
    from playwright.async_api import Route, expect

    async with running_web(tmp_path, secret_key) as stack:
        me = await stack.client("playground")
        await me.start("Something to stop")
        async with _signed_in_page(stack, capsys.readouterr().out) as page:
            status = page.locator("#run-status")

            answered = asyncio.Event()

            async def answer_late(route: Route) -> None:
                answer = await route.fetch()  # the run is cancelled on the server now
                await expect(status).to_contain_text("finished")  # its event was shown
                await route.fulfill(response=answer)
                answered.set()

            await page.route("**/tasks/*/cancel", answer_late)
            await page.locator("#run-list button").first.click()
            await expect(page.locator("#credential-dialog")).to_be_visible()
            await page.keyboard.press("Escape")
            await page.locator("#stop-button").click()
            await asyncio.wait_for(answered.wait(), timeout=20)
            await page.wait_for_timeout(300)  # the page has read the late answer by now
            await expect(status).to_contain_text("finished")


async def test_on_a_phone_the_transcript_follows_a_reader_at_its_end(
    tmp_path: Path, secret_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.async_api import expect

    async with running_web(tmp_path, secret_key) as stack:
        me = await stack.client("playground")
        task_id = await me.start("A run read on a phone")
        await _append(stack, task_id, _infos("early", 60))
        phone = {"width": 390, "height": 844}
        async with _signed_in_page(stack, capsys.readouterr().out, phone) as page:
            await page.locator("#run-list button").first.click()
            await expect(page.locator("#credential-dialog")).to_be_visible()
            await page.keyboard.press("Escape")
            await expect(page.locator("#transcript .info-line")).to_have_count(60)
            await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
            await _append(stack, task_id, _infos("later", 30))
            await expect(page.locator("#transcript .info-line")).to_have_count(90)
            await page.wait_for_timeout(300)
            at_end = await page.evaluate(
                "innerHeight + scrollY >= document.documentElement.scrollHeight - 80"
            )
        assert at_end, "the reader was at the end; the new messages are below the screen"


async def test_signing_in_again_after_the_session_ended_shows_no_stale_refusal(
    tmp_path: Path, secret_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.async_api import expect

    async with running_web(tmp_path, secret_key) as stack:
        me = await stack.client("playground")
        task_id = await me.start("A run followed when the session ends")
        async with _signed_in_page(stack, capsys.readouterr().out) as page:
            await page.locator("#run-list button").first.click()
            await expect(page.locator("#transcript .credential-line")).to_be_visible()
            # The session's token is revoked elsewhere (signed out in another tab, say).
            store = await Store.open(stack.settings, run_migrations=False)
            try:
                (cookie,) = await page.context.cookies()
                holder = await store.tokens.holder(cookie["value"])
                assert holder is not None
                await store.tokens.revoke(holder.token_id)
            finally:
                await store.close()
            await _append(stack, task_id, _infos("after", 1))
            await expect(page.locator("#signin-section")).to_be_visible(timeout=15_000)
            await page.locator("#token-input").fill(me.token or "")
            await page.locator("#token-input").press("Enter")
            await expect(page.locator("#workspace")).to_be_visible()
            await expect(page.locator("#run-list button")).to_have_count(1)
            notice = await page.locator("#run-notice").text_content()
        assert not notice, f"signed in again, the page still says: {notice!r}"


async def test_every_run_of_ones_can_be_reached_from_the_run_list(
    tmp_path: Path, secret_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_web(tmp_path, secret_key) as stack:
        me = await stack.client("playground")
        for number in range(21):
            await me.start(f"Run number {number:02d}")
        async with _signed_in_page(stack, capsys.readouterr().out) as page:
            await page.wait_for_timeout(500)
            listed = await page.locator(".sidebar").inner_text()
            more = await page.get_by_role("button", name=re.compile("more|older", re.I)).count()
        assert "Run number 00" in listed or more > 0, "the oldest run cannot be reached"


async def test_a_run_stopped_from_the_web_has_a_readable_outcome(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_web(tmp_path, secret_key) as stack:
        alice = await stack.client("alice")
        task_id = await alice.start()
        answer = await alice.call("POST", f"/tasks/{task_id}/cancel")
        assert answer.status == 200, answer
        for _ in range(100):
            view = await alice.call("GET", f"/tasks/{task_id}")
            if view.body["status"] == "cancelled":
                break
            await asyncio.sleep(0.05)
        outcome = view.body["outcome"] or ""
        assert "cancelled" in outcome.lower(), view.body
        assert "<@" not in outcome, outcome


# --- the server's lifecycle ----------------------------------------------------------------


async def test_no_websocket_request_line_is_logged(
    tmp_path: Path, secret_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_web(tmp_path, secret_key) as stack:
        alice = await stack.client("alice")
        task_id = await alice.start()
        canary = "query-canary-5f2e"
        url = alice.ws_url(task_id, after=0) + f"&note={canary}"
        async with stack.session.ws_connect(url, headers=alice.headers) as ws:
            await alice.events_until(ws, "credential_request")
    logged = [r.getMessage() for r in caplog.records]
    assert not [m for m in logged if canary in m or "/ws/" in m], logged


async def test_a_failed_start_of_the_runner_closes_what_it_opened(
    tmp_path: Path, secret_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []
    real_close = Store.close

    async def spy_close(self: Store) -> None:
        closed.append(True)
        await real_close(self)

    async def database_gone(self: RunManager) -> None:
        raise ConnectionRefusedError("the database went away")

    monkeypatch.setattr(Store, "close", spy_close)
    monkeypatch.setattr(RunManager, "recover", database_gone)
    async with FakeLLMServer(valid_keys={KEY}) as llm:
        settings = local_settings(llm, tmp_path, secret_key)
        with pytest.raises(ConnectionRefusedError):
            async with serving(settings):
                pass
    assert closed, "the failed start left the store open"


def _bot_env(port: int, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PYTHONPATH"))}
    env.update(PYTHONPATH=str(PROJECT_ROOT), PORT=str(port), **more)
    return env


def test_an_unreachable_database_stops_start_up_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        db_port = closed_port.getsockname()[1]  # nothing listens here
    env = _bot_env(
        port, DATABASE_URL=f"postgresql+asyncpg://app@127.0.0.1:{db_port}/app", LOG_FORMAT="console"
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr[-1500:]
    assert done.returncode == 2, done.returncode
    assert "error: DATABASE_URL" in done.stderr, done.stderr[-1500:]


def test_a_fresh_folder_prints_the_one_line_the_readme_shows(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=_bot_env(port),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the log; stdout holds what the README shows
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "is running locally" in line or len(lines) > 200:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert any("is running locally: open http://127.0.0.1" in line for line in lines), lines
    assert len([line for line in lines if line.strip()]) == 1, "".join(lines)


async def test_a_second_ctrl_c_stops_the_app_at_once(tmp_path: Path, secret_key: str) -> None:
    turn_started = asyncio.Event()

    async def slow_turn(_request: dict) -> str:
        turn_started.set()
        await asyncio.sleep(60)
        return "Too late."

    database_url = f"sqlite+aiosqlite:///{tmp_path}/ctrl-c.db"
    async with FakeLLMServer(valid_keys={KEY}) as llm:
        llm.script(AGENT_MODEL, [slow_turn])
        llm.default(VERIFIER_MODEL, verdict())
        store = await Store.open(
            load_settings(database_url=database_url, server_secret_key=secret_key)
        )
        try:
            _, token = await store.tokens.create(user_id="alice")
        finally:
            await store.close()
        port = free_port()
        env = _bot_env(
            port,
            DATABASE_URL=database_url,
            SERVER_SECRET_KEY=secret_key,
            LLM_BASE_URL=llm.base_url,
            LLM_MODEL=AGENT_MODEL,
            VERIFIER_MODEL=VERIFIER_MODEL,
            LLM_API_KEY=KEY,
            LLM_MAX_RETRIES="0",
            STREAMING="off",
            LOG_FORMAT="console",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            await asyncio.wait_for(process.stdout.readline(), timeout=30)  # listening
            import aiohttp

            async with aiohttp.ClientSession() as session:
                async with session.post(
                    f"http://127.0.0.1:{port}/start-task",
                    json={"task": "Take your time"},
                    headers={"Authorization": f"Bearer {token}"},
                ) as answer:
                    assert answer.status == 201, await answer.text()
            await asyncio.wait_for(turn_started.wait(), timeout=20)
            process.send_signal(signal.SIGINT)
            await asyncio.sleep(1)
            process.send_signal(signal.SIGINT)  # "no, really"
            # Well inside the 30 s the first Ctrl-C alone would give the turn.
            _out, err = await asyncio.wait_for(process.communicate(), timeout=25)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert "stopping now: running turns are aborted" in err.decode(), err.decode()[-2000:]
    assert process.returncode == 0
