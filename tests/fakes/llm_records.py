"""What the fake LLM server is scripted with and what it records.

Plain data types shared by the server's modules and used by tests: the replies a test
scripts (text, ``ToolCall``, ``HttpError`` or a function computing one) and the requests
the server kept (``RecordedRequest`` with case-insensitive ``Headers``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeAlias

from tests.fakes.llm_wire import JsonDict, error

__all__ = [
    "Handler",
    "Headers",
    "HttpError",
    "RecordedRequest",
    "Reply",
    "ReplyFunction",
    "ToolCall",
]


@dataclass(frozen=True)
class ToolCall:
    """An assistant message that calls one tool.

    ``arguments`` is normally a dict and is sent JSON-encoded, as OpenAI does; a ``str``
    is sent verbatim so tests can feed the client malformed arguments. ``id`` is generated
    (``call_fake000001``, ...) when not given, deterministically per server.
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        """The arguments as they appear on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclass(frozen=True)
class HttpError:
    """An HTTP failure instead of a completion, e.g. ``HttpError(429, headers=...)``.

    Without ``body``, an error object shaped like OpenAI's for that status is sent, so
    ``openai`` maps it to the same exception class it would in production. Note that
    ``openai`` ignores ``retry-after: 0`` and then backs off about half a second; use
    ``{"retry-after-ms": "1"}`` for a fast retry.
    """

    status: int
    body: JsonDict | None = None
    headers: Mapping[str, str] | None = None

    def error_body(self) -> JsonDict:
        """The JSON body to send: the given one, or OpenAI's shape for the status."""
        if self.body is not None:
            return self.body
        if self.status == 429:
            return error("Rate limit reached for requests", "requests", "rate_limit_exceeded")
        if self.status >= 500:
            return error(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
            )
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = f"HTTP {self.status}"
        return error(phrase, "invalid_request_error")


ReplyFunction: TypeAlias = Callable[[JsonDict], "Reply | Awaitable[Reply]"]
"""Computes a reply from the request body (a copy), e.g. to answer based on the prompt."""

Reply: TypeAlias = "str | ToolCall | HttpError | ReplyFunction"
"""What one request is answered with: text, a tool call, an HTTP error, or a function."""

Handler: TypeAlias = Callable[[JsonDict], "Reply | None | Awaitable[Reply | None]"]
"""Like ``ReplyFunction``, but ``None`` means "not mine": the queue and default answer."""


class Headers(dict[str, str]):
    """Request headers as a plain ``dict`` whose lookups ignore case.

    HTTP header names are case-insensitive and clients differ in how they spell them, so
    ``headers["Authorization"]`` and ``headers.get("authorization")`` must both work.
    Keys are stored lower-case; repeated headers are joined with ``", "``.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for name, value in pairs:
            key = name.lower()
            super().__setitem__(key, f"{self[key]}, {value}" if key in self else value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the server answered, kept so tests can assert on traffic.

    ``json`` is the decoded body (``{}`` for a GET or an undecodable body), ``model`` its
    ``model`` field (``""`` when absent), ``status`` the HTTP status answered and ``at``
    ``time.monotonic()`` when the answer was chosen.
    """

    path: str
    headers: Headers
    json: JsonDict
    status: int
    model: str
    at: float
    method: str = "POST"


class Gate:
    """A scripted reply that holds its request until the test opens it: while it is held,
    the turn that asked is surely running (a reply written then lands mid-turn)."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.entered = asyncio.Event()
        self.open = asyncio.Event()
        self.request: JsonDict = {}

    async def __call__(self, request: JsonDict) -> str:
        self.request = request
        self.entered.set()
        await self.open.wait()
        return self.answer
