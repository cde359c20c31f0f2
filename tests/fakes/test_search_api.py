"""The fake Tavily API must answer like Tavily: its wire format, its errors, and the
requests it refuses, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.search_api import UNAUTHORIZED, FakeSearchAPI

KEY = "tvly-fake-test-key-1"


@pytest.fixture
async def api() -> AsyncIterator[FakeSearchAPI]:
    async with FakeSearchAPI(valid_keys={KEY}) as server:
        yield server


async def post(
    api: FakeSearchAPI,
    body: Any,
    *,
    key: str | None = KEY,
    path: str = "/search",
    timeout_s: float = 5.0,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
        session.post(api.base_url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def test_default_results_in_tavilys_shape(api: FakeSearchAPI) -> None:
    status, body = await post(api, {"query": "slack bolt", "max_results": 2})
    assert status == 200
    assert set(body) == {"query", "answer", "images", "results", "response_time", "request_id"}
    assert body["query"] == "slack bolt" and body["answer"] is None and body["images"] == []
    assert len(body["results"]) == 2
    first = body["results"][0]
    assert set(first) == {"title", "url", "content", "score", "raw_content"}
    assert "slack bolt" in first["title"] and first["raw_content"] is None
    assert api.problems == []
    [request] = api.requests
    assert (request.method, request.path, request.status) == ("POST", "/search", 200)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json["max_results"] == 2


async def test_scripted_results_and_answer(api: FakeSearchAPI) -> None:
    api.results_for(
        "autogen",
        [{"title": "AutoGen", "url": "https://ag.example", "content": "Agents."}],
        answer="AutoGen is a framework.",
    )
    _, with_answer = await post(api, {"query": "autogen", "include_answer": True})
    _, without = await post(api, {"query": "autogen"})
    assert with_answer["answer"] == "AutoGen is a framework."
    assert with_answer["results"] == [
        {
            "title": "AutoGen",
            "url": "https://ag.example",
            "content": "Agents.",
            "score": 0.5,
            "raw_content": None,
        }
    ]
    assert without["answer"] is None
    _, other = await post(api, {"query": "other", "include_answer": "basic"})
    assert other["answer"] and len(other["results"]) == 3


@pytest.mark.parametrize("key", [None, "tvly-wrong"])
async def test_missing_or_unknown_key_gets_401(api: FakeSearchAPI, key: str | None) -> None:
    status, body = await post(api, {"query": "q"}, key=key)
    assert (status, body) == (401, {"detail": {"error": UNAUTHORIZED}})
    # A missing header is the client's bug; a wrong key is the user's.
    assert len(api.problems) == (1 if key is None else 0)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"query": "  "},
        {"query": "q", "max_results": 21},
        {"query": "q", "max_results": "5"},
        {"query": "q", "search_depth": "deep"},
        {"query": "q", "include_answer": "yes"},
        {"query": "q", "topic": "sports"},
        ["q"],
    ],
)
async def test_bad_bodies_get_400_and_are_problems(api: FakeSearchAPI, body: Any) -> None:
    status, answer = await post(api, body)
    assert status == 400
    assert isinstance(answer["detail"]["error"], str)
    assert len(api.problems) == 1


async def test_wrong_path_and_method_are_problems(api: FakeSearchAPI) -> None:
    status, _ = await post(api, {"query": "q"}, path="/v1/search")
    assert status == 404
    async with aiohttp.ClientSession() as session, session.get(api.base_url + "/search") as r:
        assert r.status == 405
    assert len(api.problems) == 2


@pytest.mark.parametrize("status", [429, 432, 433, 500])
async def test_fail_next_answers_one_request_with_the_error(
    api: FakeSearchAPI, status: int
) -> None:
    api.fail_next(status)
    first, body = await post(api, {"query": "q"})
    second, _ = await post(api, {"query": "q"})
    assert (first, second) == (status, 200)
    assert isinstance(body["detail"]["error"], str)
    assert [r.status for r in api.requests] == [status, 200]


async def test_fail_next_with_a_raw_body(api: FakeSearchAPI) -> None:
    api.fail_next(200, body="<html>proxy error</html>", content_type="text/html")
    async with (
        aiohttp.ClientSession() as session,
        session.post(api.base_url + "/search", json={"query": "q"}) as resp,
    ):
        assert (resp.status, await resp.text()) == (200, "<html>proxy error</html>")


async def test_hang_next_never_answers(api: FakeSearchAPI) -> None:
    api.hang_next()
    with pytest.raises(asyncio.TimeoutError):
        await post(api, {"query": "q"}, timeout_s=0.2)
    assert [r.status for r in api.requests] == [0]
    status, _ = await post(api, {"query": "q"})
    assert status == 200


async def test_received_searches_headers_and_bodies(api: FakeSearchAPI) -> None:
    await post(api, {"query": 'say "hé"'})
    assert api.received(KEY)
    assert api.received('say "hé"')
    assert not api.received("never-sent")
