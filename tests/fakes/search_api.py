"""A local fake of Tavily's search API (``POST https://api.tavily.com/search``).

The app's built-in ``web_search`` tool calls Tavily over HTTP with the user's key, so the
tests answer real HTTP in Tavily's wire format instead of mocking the client: a missing
header, a wrong path or a malformed body fails here as it would in production.

Typical use::

    async with FakeSearchAPI(valid_keys={"tvly-test"}) as api:
        api.results_for("slack bolt", [{"title": "Bolt", "url": "https://x", "content": "…"}])
        api.fail_next(429)
        ...
        assert not api.received("the-user-secret")
        assert api.problems == []

What Tavily documents: the key comes as ``Authorization: Bearer tvly-...``; the body is
JSON with a required ``query`` and optional ``max_results`` (0-20), ``search_depth``
(``basic``, ``advanced``, ``fast``, ``ultra-fast``), ``include_answer`` (a bool,
``"basic"`` or ``"advanced"``), ``topic`` and more; the answer is ``{"query", "answer",
"images", "results": [{"title", "url", "content", "score", "raw_content"}],
"response_time", "request_id"}``. Errors carry ``{"detail": {"error": "..."}}``: 400 for a
bad body, 401 for a missing or unknown key, 429 when rate limited, 432 and 433 when the
plan's or the pay-as-you-go limit is reached.

``problems`` lists requests Tavily would refuse because the client built them wrong (bad
body, wrong path or method, no Authorization header); an unknown key is the user's
mistake, not the client's, so it gets its 401 without being listed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.llm_records import Headers

__all__ = ["DEFAULT_API_KEY", "FakeSearchAPI", "Headers", "SearchRequest"]

DEFAULT_API_KEY = "tvly-fake-0000"
SEARCH_PATH = "/search"
SEARCH_DEPTHS = {"basic", "advanced", "fast", "ultra-fast"}
TOPICS = {"general", "news", "finance"}
ANSWER_LEVELS = {"basic", "advanced"}
MAX_RESULTS_LIMIT = 20
DEFAULT_MAX_RESULTS = 5
UNAUTHORIZED = "Unauthorized: missing or invalid API key."
ERROR_MESSAGES = {
    400: "Bad request.",
    401: UNAUTHORIZED,
    403: "Forbidden.",
    429: "Your request has been blocked due to excessive requests. Please slow down.",
    432: "This request exceeds your plan's set usage limit. Please upgrade your plan.",
    433: "This request exceeds the pay-as-you-go limit. You can increase your limit.",
    500: "Internal Server Error",
}

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class SearchRequest:
    """One request the fake received. ``json`` is ``{}`` when the body was not a JSON
    object; ``status`` is what was answered (0 for a request ``hang_next`` never answered);
    ``at`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    headers: Headers
    json: JsonDict
    status: int
    at: float


@dataclass(frozen=True)
class _Injected:
    """An answer queued by ``fail_next`` or ``hang_next``, used by the next request."""

    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str]
    hang: bool = False


def error_body(status: int, message: str | None = None) -> JsonDict:
    """Tavily's error shape for ``status``."""
    return {"detail": {"error": message or ERROR_MESSAGES.get(status, f"HTTP {status}")}}


def default_results(query: str) -> list[JsonDict]:
    """What an unscripted query finds: three stable results naming the query."""
    slug = "-".join(query.lower().split())[:40] or "empty"
    return [
        {
            "title": f"Result {n} for {query}",
            "url": f"https://example.com/{slug}/{n}",
            "content": f"Snippet {n} about {query}.",
            "score": round(0.9 - 0.1 * n, 2),
        }
        for n in (1, 2, 3)
    ]


class FakeSearchAPI:
    """An aiohttp server on 127.0.0.1 speaking Tavily's ``/search``; state changes only on
    the event loop's thread, so tests may script it while the app is calling it."""

    def __init__(
        self, valid_keys: Iterable[str] = (DEFAULT_API_KEY,), *, host: str = "127.0.0.1"
    ) -> None:
        self.valid_keys: set[str] = set(valid_keys)
        self.requests: list[SearchRequest] = []
        self.problems: list[str] = []
        self._host = host
        self._scripted: dict[str, tuple[list[JsonDict], str | None]] = {}
        self._injected: list[_Injected] = []
        self._raw_requests: list[bytes] = []
        self._closing = asyncio.Event()
        self._answered = 0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def start(self) -> None:
        """Listen on a free port; ``base_url`` is valid afterwards."""
        if self._runner is not None:
            raise RuntimeError("FakeSearchAPI is already running")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self._host, 0).start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening (releasing hung requests); what was recorded stays."""
        self._closing.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeSearchAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, what replaces ``https://api.tavily.com``."""
        if self._port is None:
            raise RuntimeError("FakeSearchAPI is not started")
        return f"http://{self._host}:{self._port}"

    def results_for(
        self, query: str, results: Iterable[Mapping[str, Any]], *, answer: str | None = None
    ) -> None:
        """Answer ``query`` (exactly) with ``results``; ``score`` and ``raw_content``
        default to 0.5 and null. ``answer`` is sent when the request asks for one."""
        full = [{"score": 0.5, "raw_content": None, **dict(r)} for r in results]
        self._scripted[query] = (full, answer)

    def fail_next(
        self,
        status: int,
        *,
        body: Mapping[str, Any] | str | bytes | None = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next request with ``status`` (each call queues one answer).

        Without ``body``, Tavily's error JSON for the status; a ``str`` or ``bytes`` body is
        sent verbatim, e.g. ``fail_next(200, body="<html>")`` for a broken proxy.
        """
        if body is None:
            raw = json.dumps(error_body(status)).encode()
        elif isinstance(body, Mapping):
            raw = json.dumps(dict(body)).encode()
        else:
            raw = body.encode() if isinstance(body, str) else body
        self._injected.append(_Injected(status, raw, content_type, dict(headers or {})))

    def hang_next(self) -> None:
        """Never answer the next request (until the server closes), to test timeouts."""
        self._injected.append(_Injected(0, b"", "", {}, hang=True))

    def received_bytes(self) -> bytes:
        """Everything clients sent: request lines, headers and bodies, in arrival order."""
        return b"".join(self._raw_requests)

    def received(self, text: str) -> bool:
        """Whether ``text`` reached the server anywhere, verbatim or JSON-escaped."""
        data = self.received_bytes()
        forms = {
            text.encode(),
            json.dumps(text)[1:-1].encode(),
            json.dumps(text, ensure_ascii=False)[1:-1].encode(),
        }
        return any(form in data for form in forms)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await self._capture(request)
        headers = Headers(request.headers.items())
        payload, problem = self._validate(request, headers, raw)
        if problem is not None:
            self.problems.append(f"{request.method} {request.path}: {problem}")

        def record(status: int) -> None:
            self.requests.append(
                SearchRequest(
                    request.method, request.path, headers, payload, status, time.monotonic()
                )
            )

        if self._injected:
            injected = self._injected.pop(0)
            if injected.hang:
                record(0)
                await self._closing.wait()
                raise web.HTTPServiceUnavailable()
            record(injected.status)
            return web.Response(
                status=injected.status,
                body=injected.body,
                content_type=injected.content_type or None,
                headers=injected.headers,
            )
        if request.path != SEARCH_PATH:
            record(404)
            return web.json_response({"detail": "Not Found"}, status=404)
        if request.method != "POST":
            record(405)
            return web.json_response({"detail": "Method Not Allowed"}, status=405)
        if not self._authorized(headers):
            record(401)
            return web.json_response(error_body(401), status=401)
        if problem is not None:
            record(400)
            return web.json_response(error_body(400, problem), status=400)
        record(200)
        return web.json_response(self._answer(payload))

    def _validate(
        self, request: web.Request, headers: Headers, raw: bytes
    ) -> tuple[JsonDict, str | None]:
        """The decoded body and the first reason Tavily would refuse the request, if any."""
        if request.path != SEARCH_PATH:
            return {}, "unknown path (is base_url right?)"
        if request.method != "POST":
            return {}, "Tavily's search is POST only"
        if "authorization" not in headers:
            body, _ = _decode(raw)
            return body, "no Authorization header"
        body, problem = _decode(raw)
        if problem is not None:
            return body, problem
        if not headers.get("content-type", "").startswith("application/json"):
            return body, "Content-Type is not application/json"
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            return body, "query is missing or empty"
        max_results = body.get("max_results", DEFAULT_MAX_RESULTS)
        if (
            not isinstance(max_results, int)
            or isinstance(max_results, bool)
            or not 0 <= max_results <= MAX_RESULTS_LIMIT
        ):
            return body, f"max_results must be an integer from 0 to {MAX_RESULTS_LIMIT}"
        if body.get("search_depth", "basic") not in SEARCH_DEPTHS:
            return body, f"search_depth must be one of {sorted(SEARCH_DEPTHS)}"
        if body.get("topic", "general") not in TOPICS:
            return body, f"topic must be one of {sorted(TOPICS)}"
        include_answer = body.get("include_answer", False)
        if not isinstance(include_answer, bool) and include_answer not in ANSWER_LEVELS:
            return body, "include_answer must be a boolean, 'basic' or 'advanced'"
        return body, None

    def _authorized(self, headers: Headers) -> bool:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and key.strip() in self.valid_keys

    def _answer(self, payload: JsonDict) -> JsonDict:
        query: str = payload["query"]
        results, answer = self._scripted.get(query, (None, None))
        if results is None:
            results = [{"raw_content": None, **r} for r in default_results(query)]
        if payload.get("include_answer"):
            answer = answer or f"A short answer about {query}."
        else:
            answer = None
        self._answered += 1
        return {
            "query": query,
            "answer": answer,
            "images": [],
            "results": results[: payload.get("max_results", DEFAULT_MAX_RESULTS)],
            "response_time": 0.01,
            "request_id": f"fake-{self._answered:06d}",
        }

    async def _capture(self, request: web.Request) -> bytes:
        body = await request.read()
        version = f"{request.version.major}.{request.version.minor}"
        head = f"{request.method} {request.raw_path} HTTP/{version}\r\n".encode()
        head += b"".join(name + b": " + value + b"\r\n" for name, value in request.raw_headers)
        self._raw_requests.append(head + b"\r\n" + body)
        return body


def _decode(raw: bytes) -> tuple[JsonDict, str | None]:
    try:
        decoded = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}, "body is not valid JSON"
    if not isinstance(decoded, dict):
        return {}, "body is not a JSON object"
    return decoded, None
