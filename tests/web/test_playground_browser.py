"""The playground in a real headless browser: the distribution's Chromium, driven by
Playwright for Python. Open the link the app prints, start a task, give the key in the
private dialog, watch the agents' messages and verdicts appear, click a suggested action,
see the run finish; afterwards the key is nowhere in the page."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL, verdict
from tests.web.stack import KEY, running_web

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """The machine's Chromium (`.ci/run` installs Debian's); Playwright downloads none."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("no Chromium on this machine: .ci/run installs Debian's chromium package")
    pytest.skip("no Chromium here (apt-get install chromium); CI installs it")


async def test_a_run_from_the_printed_link_to_the_end(
    tmp_path: Path, secret_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.async_api import async_playwright, expect

    executable = chromium_path()
    fix = [{"type": "revise", "label": "Make it rhyme", "params": {}}]
    async with running_web(tmp_path, secret_key) as stack:
        stack.llm.script(
            AGENT_MODEL,
            ["1. Pick a theme.", "Queues wait", "Queues wait in line", "Done. TERMINATE"],
        )
        stack.llm.script(VERIFIER_MODEL, [verdict(), verdict("fail", "It does not rhyme.", fix)])
        stack.llm.default(VERIFIER_MODEL, verdict())
        printed = capsys.readouterr().out
        link = re.search(r"open (http://127\.0\.0\.1:\d+/login\?code=\S+)", printed)
        assert link, printed

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=["--no-sandbox"]
            )
            try:
                page = await browser.new_page(viewport={"width": 390, "height": 844})
                problems: list[str] = []
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.on(
                    "console",
                    lambda m: problems.append(m.text) if m.type == "error" else None,
                )
                await page.goto(link.group(1))
                assert page.url.endswith("/"), page.url  # the code left the address bar
                await expect(page.locator("#workspace")).to_be_visible()
                await expect(page.locator("#who")).to_contain_text("playground")

                # Start a task with the keyboard.
                await page.locator("#task-input").fill("Write a haiku about queues")
                await page.locator("#task-input").press("Control+Enter")

                # The run asks for the key: the private dialog, a password field.
                dialog = page.locator("#credential-dialog")
                await expect(dialog).to_be_visible(timeout=20_000)
                field = page.locator("#credential-value")
                assert await field.get_attribute("type") == "password"
                await field.fill("short")
                await page.locator("#credential-submit").click()
                await expect(page.locator("#credential-error")).to_contain_text("too short")
                assert await field.input_value() == ""
                await field.fill(KEY)
                await page.locator("#credential-submit").click()
                await expect(dialog).to_be_hidden()

                # The team works: each agent's name, its message and its verdict.
                messages = page.locator("#transcript .agent-message")
                # Each agent under its own display name (the team's slack_name, else its name).
                await expect(messages.first.locator(".sender")).to_have_text(
                    re.compile("planner", re.I), timeout=20_000
                )
                await expect(messages.nth(1)).to_contain_text("Queues wait")
                await expect(page.locator("#transcript .verdict").first).to_contain_text(
                    re.compile("pass", re.I)
                )
                await expect(page.locator("#run-status")).to_contain_text("decision")

                # The verifier's suggestion, clicked.
                suggested = page.locator(".action-button", has_text="Make it rhyme")
                await suggested.click()
                await expect(suggested).to_be_disabled()
                await expect(page.locator("#run-status")).to_contain_text(
                    "finished", timeout=20_000
                )
                await expect(page.locator("#stop-button")).to_be_disabled()
                senders = await page.locator("#transcript .agent-message .sender").all_inner_texts()
                assert [s.split()[0].lower() for s in senders] == [
                    "planner",
                    "worker",
                    "worker",
                    "reviewer",
                ], senders
                await expect(page.locator("#run-list")).to_contain_text("haiku")
                await page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)

                # The key is in no part of the page, and the field is empty.
                assert KEY not in await page.content()
                assert await field.input_value() == ""
                # The too-short key's 422 is the one failed request the browser saw.
                expected = "the server responded with a status of 422"
                assert [p for p in problems if expected not in p] == [], problems
            finally:
                await browser.close()
        assert stack.llm.received(KEY)
