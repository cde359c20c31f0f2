"""How the playground is reached: in local mode through the printed one-time link (a code
that works once, for an HttpOnly SameSite cookie); with Slack configured only with an API
token; `PLAYGROUND=off` serves no page (the API stays); /docs describes the API."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.stack import running_stack
from tests.web.stack import KEY, make_token, running_web


def _link(printed: str) -> str:
    found = re.search(r"open http://127\.0\.0\.1:\d+(/login\?code=\S+)", printed)
    assert found, printed
    return found.group(1)


async def test_the_printed_link_signs_in_once_and_sign_out_ends_the_session(
    tmp_path: Path, secret_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        link = _link(capsys.readouterr().out)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            async with browser.get(stack.base + link, allow_redirects=False) as answer:
                assert answer.status == 303 and answer.headers["Location"] == "/"
                cookie = answer.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=strict" in cookie
                assert answer.headers["Referrer-Policy"] == "no-referrer"
            async with browser.get(stack.base + "/session") as answer:
                assert answer.status == 200
                session = await answer.json()
            assert session["user_id"] == "playground" and session["local"] is True
            assert [t["name"] for t in session["teams"]] == ["default"]
            async with browser.get(stack.base + "/") as page:
                assert page.status == 200 and "text/html" in page.content_type
                assert "default-src 'self'" in page.headers["Content-Security-Policy"]
            # Another site's page cannot use the cookie (its Origin is not this server).
            evil = {"Origin": "http://evil.example"}
            async with browser.post(
                stack.base + "/start-task", json={"task": "x"}, headers=evil
            ) as answer:
                assert answer.status == 401
            async with browser.delete(stack.base + "/session") as answer:
                assert answer.status == 204
            async with browser.get(stack.base + "/session") as answer:
                assert answer.status == 401
        # The code worked once: a second use (another browser, the same link) is refused.
        async with aiohttp.ClientSession() as other:
            async with other.get(stack.base + link, allow_redirects=False) as answer:
                assert answer.status == 400 and "no longer works" in await answer.text()
                assert "Set-Cookie" not in answer.headers


async def test_with_slack_configured_the_page_asks_for_an_api_token(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys=set()) as stack:
        base = f"http://127.0.0.1:{stack.settings.port}"
        _, token = await make_token(stack.settings, "U1", "T1")
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            async with browser.get(base + "/") as page:
                assert page.status == 200
            async with browser.get(base + "/session") as answer:
                assert answer.status == 401
            async with browser.get(base + "/login?code=anything", allow_redirects=False) as answer:
                assert answer.status == 400  # no sign-in links outside local mode
            async with browser.post(base + "/session", json={"token": "agt_" + "x" * 43}) as a:
                assert a.status == 401
            async with browser.post(base + "/session", json={"token": token}) as answer:
                assert answer.status == 204
            async with browser.get(base + "/session") as answer:
                assert (await answer.json())["user_id"] == "U1"
            async with browser.delete(base + "/session") as answer:
                assert answer.status == 204
        # The pasted token is the person's own: signing out did not revoke it.
        async with aiohttp.ClientSession() as program:
            headers = {"Authorization": f"Bearer {token}"}
            async with program.get(base + "/tasks", headers=headers) as answer:
                assert answer.status == 200


async def test_playground_off_serves_the_api_alone_and_docs_describe_it(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_web(tmp_path, secret_key, playground=False) as stack:
        async with aiohttp.ClientSession() as session:
            async with session.get(stack.base + "/") as answer:
                assert answer.status == 404
            async with session.get(stack.base + "/openapi.json") as answer:
                spec = await answer.json()
            async with session.get(stack.base + "/docs") as answer:
                assert answer.status == 200
        assert set(spec["paths"]) == {
            "/start-task",
            "/tasks",
            "/tasks/{task_id}",
            "/tasks/{task_id}/cancel",
            "/tasks/{task_id}/actions/{action_id}",
            "/credentials",
            "/credentials/{user_id}",
            "/credentials/{user_id}/{provider}",
        }
