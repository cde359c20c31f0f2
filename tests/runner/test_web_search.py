"""The built-in web_search client against the fake Tavily API: the answer it parses, the
errors it maps, and the key it must never repeat."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator

import pytest

from runner.builtins.web_search import (
    SearchAnswer,
    SearchFailed,
    SearchHit,
    SearchKeyRefused,
    answer_text,
    web_search,
)
from tests.fakes.search_api import FakeSearchAPI

KEY = "tvly-fake-runner-key-42"
WRONG_KEY = "tvly-not-valid-9"  # a name, not a literal, at the call: tracebacks quote source


@pytest.fixture
async def api() -> AsyncIterator[FakeSearchAPI]:
    async with FakeSearchAPI(valid_keys={KEY}) as server:
        yield server


async def search(api: FakeSearchAPI, query: str = "slack bolt", **kwargs: object) -> SearchAnswer:
    options: dict = {"api_key": KEY, "base_url": api.base_url, **kwargs}
    return await web_search(query, **options)


def assert_no_key(exc: BaseException, key: str = KEY) -> None:
    """Not in the message, and not in a traceback the app might log (no chained aiohttp
    exception whose request info holds the headers)."""
    for text in (str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))):
        assert key not in text
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


async def test_happy_path(api: FakeSearchAPI) -> None:
    api.results_for(
        "slack bolt",
        [
            {"title": "Bolt for Python", "url": "https://bolt.example", "content": "A framework."},
            {"title": "No URL", "content": "dropped"},
            {"title": "Int score", "url": "https://two.example", "content": "x", "score": 1},
        ],
        answer="Bolt is Slack's framework.",
    )
    answer = await search(api, max_results=3)
    assert answer == SearchAnswer(
        query="slack bolt",
        answer="Bolt is Slack's framework.",
        hits=[
            SearchHit("Bolt for Python", "https://bolt.example", "A framework.", 0.5),
            SearchHit("Int score", "https://two.example", "x", 1.0),
        ],
    )
    [request] = api.requests
    assert request.path == "/search"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "query": "slack bolt",
        "max_results": 3,
        "search_depth": "basic",
        "include_answer": True,
    }
    assert api.problems == []


async def test_trailing_slash_and_clamped_max_results(api: FakeSearchAPI) -> None:
    answer = await web_search("q", api_key=KEY, base_url=api.base_url + "/", max_results=50)
    assert len(answer.hits) == 3
    assert api.requests[0].path == "/search" and api.requests[0].json["max_results"] == 20
    assert api.problems == []


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_key(api: FakeSearchAPI, status: int) -> None:
    api.fail_next(status)
    with pytest.raises(SearchKeyRefused) as raised:
        await search(api)
    assert raised.value.status == status
    assert str(raised.value) == f"The search service refused the API key (HTTP {status})."
    assert_no_key(raised.value)


async def test_unknown_key_is_refused(api: FakeSearchAPI) -> None:
    with pytest.raises(SearchKeyRefused) as raised:
        await web_search("q", api_key=WRONG_KEY, base_url=api.base_url)
    assert_no_key(raised.value, WRONG_KEY)


@pytest.mark.parametrize(
    ("status", "words"), [(429, "rate limiting"), (500, "had an error"), (432, "usage limit")]
)
async def test_other_statuses_fail_with_status(api: FakeSearchAPI, status: int, words: str) -> None:
    api.fail_next(status)
    with pytest.raises(SearchFailed) as raised:
        await search(api)
    assert raised.value.status == status
    assert words in str(raised.value)
    assert_no_key(raised.value)


async def test_an_error_detail_echoing_the_key_is_scrubbed(api: FakeSearchAPI) -> None:
    api.fail_next(400, body={"detail": {"error": f"Key {KEY} cannot use topic 'x'."}})
    with pytest.raises(SearchFailed) as raised:
        await search(api)
    assert "cannot use topic" in str(raised.value) and "[redacted]" in str(raised.value)
    assert_no_key(raised.value)


async def test_timeout(api: FakeSearchAPI) -> None:
    api.hang_next()
    with pytest.raises(SearchFailed) as raised:
        await search(api, timeout_s=0.2)
    assert raised.value.status is None
    assert "0.2 s" in str(raised.value)
    assert_no_key(raised.value)


async def test_unreachable_service() -> None:
    async with FakeSearchAPI() as gone:
        base_url = gone.base_url
    with pytest.raises(SearchFailed) as raised:
        await web_search("q", api_key=KEY, base_url=base_url, timeout_s=5)
    assert raised.value.status is None and "Could not reach" in str(raised.value)
    assert_no_key(raised.value)


@pytest.mark.parametrize("body", ["{not json", "<html>oops</html>", '{"answer": "no results"}'])
async def test_malformed_answer(api: FakeSearchAPI, body: str) -> None:
    api.fail_next(200, body=body)
    with pytest.raises(SearchFailed) as raised:
        await search(api)
    assert raised.value.status == 200
    assert_no_key(raised.value)


async def test_empty_query_is_not_sent(api: FakeSearchAPI) -> None:
    with pytest.raises(SearchFailed):
        await search(api, query="   ")
    assert api.requests == []


async def test_the_key_is_in_no_log_line(
    api: FakeSearchAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await search(api)
    api.fail_next(401)
    with pytest.raises(SearchKeyRefused):
        await search(api)
    assert caplog.records
    assert all(KEY not in record.getMessage() for record in caplog.records)
    assert KEY not in caplog.text


def test_answer_text_lists_the_answer_then_numbered_hits() -> None:
    answer = SearchAnswer(
        query="q",
        answer="Short\nanswer.",
        hits=[
            SearchHit("First  title", "https://one.example", "Line one\n\nline two", 0.9),
            SearchHit("", "https://two.example", "", None),
        ],
    )
    assert answer_text(answer) == (
        "Answer: Short answer.\n\n"
        "1. First title — https://one.example\n"
        "   Line one line two\n"
        "2. https://two.example — https://two.example"
    )
    assert answer_text(SearchAnswer("cats", None, [])) == "No web results for: cats"


def test_answer_text_clips_to_max_chars() -> None:
    hits = [
        SearchHit(f"Title {n}", f"https://x.example/{n}", "word " * 200, None) for n in range(20)
    ]
    answer = SearchAnswer("q", "An answer.", hits)
    assert len(answer_text(answer)) <= 8000
    for limit in (50, 500, 3000):
        text = answer_text(answer, max_chars=limit)
        assert len(text) <= limit
        assert text.startswith("Answer: An answer.")
        assert text.endswith("[truncated]")
    assert len(answer_text(answer, max_chars=5)) == 5
