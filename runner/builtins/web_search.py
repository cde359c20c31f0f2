"""`web_search`: ask Tavily's search API (or anything speaking it) and return what an agent
can read.

The key is the user's and travels only in the Authorization header. Every exception this
module raises has a message written here, with nothing from the key, and is raised ``from
None``: an aiohttp exception can hold the request's headers, and a chained one would carry
them into any traceback the app logs."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

SEARCH_PATH = "/search"
MAX_RESULTS_LIMIT = 20  # Tavily refuses more
_MAX_BYTES = 4_000_000
_CHUNK = 65_536
_DETAIL_CHARS = 200
_TRUNCATED = "\n[truncated]"
_SPACE = re.compile(r"\s+")


class SearchKeyRefused(Exception):
    """401/403: the key was refused. The message is a short sentence, safe to show anyone."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class SearchFailed(Exception):
    """Other failures (timeouts, 5xx, 429, bad JSON); the message is safe to show anyone.

    ``status`` is the HTTP status when the service answered, else ``None``."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SearchHit:
    title: str
    url: str
    content: str
    score: float | None


@dataclass(frozen=True)
class SearchAnswer:
    query: str
    answer: str | None
    hits: list[SearchHit]


async def web_search(
    query: str,
    *,
    api_key: str,
    base_url: str,
    max_results: int = 5,
    timeout_s: float = 20.0,
) -> SearchAnswer:
    """Search once, without retrying: the agent decides whether a failure is worth another
    try, and a 429 retried at once only deepens the rate limit.

    ``max_results`` is clamped to Tavily's 1-20. Raises ``SearchKeyRefused`` when the key
    is refused and ``SearchFailed`` for everything else that stops an answer."""
    if not query.strip():
        raise SearchFailed("The search query is empty.")
    body = {
        "query": query,
        "max_results": max(1, min(MAX_RESULTS_LIMIT, max_results)),
        "search_depth": "basic",
        "include_answer": True,
    }
    url = base_url.rstrip("/") + SEARCH_PATH
    started = time.monotonic()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.post(url, json=body, headers={"Authorization": f"Bearer {api_key}"}) as resp,
        ):
            status = resp.status
            raw = await _read_capped(resp)
    except TimeoutError:
        raise SearchFailed(f"The search service did not answer within {timeout_s:g} s.") from None
    except aiohttp.ClientError as exc:
        raise SearchFailed(f"Could not reach the search service ({type(exc).__name__}).") from None
    logger.debug(
        "web search answered HTTP %s in %.2f s (%d bytes)",
        status,
        time.monotonic() - started,
        len(raw),
    )
    if status != 200:
        _raise_for(status, raw, api_key)
    return _parse(query, raw)


def answer_text(answer: SearchAnswer, *, max_chars: int = 8000) -> str:
    """The answer as compact text for an agent: Tavily's answer line if any, then numbered
    hits ("1. title — url" and the snippet below), clipped to ``max_chars``."""
    parts: list[str] = []
    if answer.answer:
        parts.append(f"Answer: {_one_line(answer.answer)}\n")
    for n, hit in enumerate(answer.hits, 1):
        title = _one_line(hit.title) or hit.url
        line = f"{n}. {title} — {hit.url}"
        content = _one_line(hit.content)
        parts.append(f"{line}\n   {content}" if content else line)
    if not answer.hits:
        parts.append(f"No web results for: {_one_line(answer.query)}")
    return _clip("\n".join(parts), max_chars)


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > _MAX_BYTES:
            raise SearchFailed("The search service sent an oversized answer.", status=resp.status)
        chunks.append(chunk)
    return b"".join(chunks)


def _raise_for(status: int, raw: bytes, api_key: str) -> None:
    if status in (401, 403):
        raise SearchKeyRefused(
            f"The search service refused the API key (HTTP {status}).", status=status
        )
    detail = _detail(raw, api_key)
    suffix = f": {detail}" if detail else "."
    if status == 429:
        message = "The search service is rate limiting requests (HTTP 429); try again later."
    elif status in (432, 433):
        message = f"The search plan's usage limit is reached (HTTP {status}){suffix}"
    elif status >= 500:
        message = f"The search service had an error (HTTP {status})."
    else:
        message = f"The search service answered HTTP {status}{suffix}"
    raise SearchFailed(message, status=status)


def _detail(raw: bytes, api_key: str) -> str:
    """Tavily's error sentence (``{"detail": {"error": ...}}``), short and without the key."""
    try:
        detail: Any = json.loads(raw).get("detail")
    except (ValueError, AttributeError):
        return ""
    if isinstance(detail, dict):
        detail = detail.get("error")
    if not isinstance(detail, str):
        return ""
    if api_key:
        detail = detail.replace(api_key, "[redacted]")
    return _one_line(detail)[:_DETAIL_CHARS]


def _parse(query: str, raw: bytes) -> SearchAnswer:
    try:
        payload = json.loads(raw)
    except ValueError:
        raise SearchFailed("The search service's answer is not JSON.", status=200) from None
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise SearchFailed("The search service sent an answer without results.", status=200)
    hits = [hit for item in results if (hit := _hit(item)) is not None]
    answer = payload.get("answer")
    echoed = payload.get("query")
    return SearchAnswer(
        query=echoed if isinstance(echoed, str) and echoed else query,
        answer=answer if isinstance(answer, str) and answer.strip() else None,
        hits=hits,
    )


def _hit(item: Any) -> SearchHit | None:
    """One result, or ``None`` for an entry without a URL (nothing an agent could cite)."""
    if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item["url"]:
        return None
    score = item.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        score = None
    return SearchHit(
        title=item["title"] if isinstance(item.get("title"), str) else "",
        url=item["url"],
        content=item["content"] if isinstance(item.get("content"), str) else "",
        score=None if score is None else float(score),
    )


def _one_line(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _clip(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    room = max_chars - len(_TRUNCATED)
    if room <= 0:
        return text[:max_chars]
    head = text[:room]
    cut = head.rfind(" ")
    if cut > room * 0.8:  # end on a word boundary when one is near
        head = head[:cut]
    return head.rstrip() + _TRUNCATED
