"""A local OpenAI-compatible chat-completions server that the tests own.

The app talks to its LLM through ``autogen_ext``'s ``OpenAIChatCompletionClient``, which
wraps ``openai.AsyncOpenAI`` and its httpx stack: retries, SSE parsing, error mapping and
response validation all happen there. Mocking the client object would skip exactly the
code that breaks in production, so this module answers real HTTP instead, in the wire
format OpenAI uses, from replies the test scripts per model name.

Typical use::

    async with FakeLLMServer(valid_keys={"sk-test"}) as llm:
        llm.script("agent-model", ["Plan.", ToolCall("add", {"a": 1}), "Done. TERMINATE"])
        llm.default("verifier-model", '{"verdict": "pass"}')
        client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="sk-test")
        ...
        assert len(llm.requests_for("agent-model")) == 3
        assert not llm.received("the-user-secret")
        assert llm.problems == []

Which reply answers a request for a model is decided in this order: the model's handler
(``set_handler``) if it returns something other than ``None``, then the next queued reply
(``script``), then the model's default (``default``), then the server-wide fallback (the
text ``"TERMINATE"``, so an unscripted team still ends instead of looping).

Requests that the real API would refuse (no model, empty or mis-ordered messages, tool or
message names outside ``[a-zA-Z0-9_-]``, ``stream_options`` without ``stream``) get the
same 400 answer and are listed in ``problems``, so a bug in how the app builds prompts
fails here rather than in production.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeAlias

from aiohttp import web

__all__ = [
    "FakeLLMServer",
    "Handler",
    "Headers",
    "HttpError",
    "RecordedRequest",
    "Reply",
    "ToolCall",
]

JsonDict = dict[str, Any]

DEFAULT_API_KEY = "sk-test"
FALLBACK_REPLY = "TERMINATE"
CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"

# Timestamps in answers are derived from a counter, not the clock, so two runs of a test
# produce byte-identical responses.
_CREATED_BASE = 1_700_000_000
# Guards against a callable reply that keeps returning callables.
_MAX_REPLY_NESTING = 16
# The pattern and length OpenAI enforces for function names in ``tools`` and for the
# ``name`` of a message (autogen fills that from a message's ``source``).
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Split points for streaming: after whitespace that is followed by a visible character,
# so "a b" streams as "a " + "b" and joining the pieces restores the text exactly.
_STREAM_SPLIT = re.compile(r"(?<=\s)(?=\S)")


# ---------------------------------------------------------------------------
# Scripted replies
# ---------------------------------------------------------------------------


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
            return _error("Rate limit reached for requests", "requests", "rate_limit_exceeded")
        if self.status >= 500:
            return _error(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
            )
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = f"HTTP {self.status}"
        return _error(phrase, "invalid_request_error")


ReplyFunction: TypeAlias = Callable[[JsonDict], "Reply | Awaitable[Reply]"]
"""Computes a reply from the request body (a copy), e.g. to answer based on the prompt."""

Reply: TypeAlias = "str | ToolCall | HttpError | ReplyFunction"
"""What one request is answered with: text, a tool call, an HTTP error, or a function."""

Handler: TypeAlias = Callable[[JsonDict], "Reply | None | Awaitable[Reply | None]"]
"""Like ``ReplyFunction``, but ``None`` means "not mine": the queue and default answer."""


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


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


@dataclass(frozen=True)
class _Answer:
    """A scripted reply turned into the pieces of an assistant message."""

    content: str | None
    tool_calls: list[JsonDict] | None
    completion_words: int

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


class _ScriptError(Exception):
    """A test scripted something the server cannot answer with."""


class _RequestError(Exception):
    """A request the real API would refuse with HTTP 400."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


# ---------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------


class FakeLLMServer:
    """An aiohttp server on 127.0.0.1 speaking OpenAI's chat-completions API.

    All state lives on the instance and is changed only from the event loop's thread
    between awaits, or under ``self._lock`` for scripting calls, so concurrent requests
    and scripting from a test while the app runs are safe.
    """

    def __init__(
        self,
        valid_keys: Iterable[str] = (DEFAULT_API_KEY,),
        *,
        fallback: Reply = FALLBACK_REPLY,
        host: str = "127.0.0.1",
    ) -> None:
        self.valid_keys: set[str] = set(valid_keys)
        self.requests: list[RecordedRequest] = []
        self.raw_bodies: list[bytes] = []
        self.problems: list[str] = []
        self._fallback = fallback
        self._host = host
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self._handlers: dict[str, Handler] = {}
        self._raw_requests: list[bytes] = []
        self._completions = 0
        self._tool_calls = 0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free port; ``base_url`` is valid afterwards."""
        if self._runner is not None:
            raise RuntimeError("FakeLLMServer is already running")
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(CHAT_COMPLETIONS_PATH, self._chat_completions)
        app.router.add_get(MODELS_PATH, self._models)
        app.router.add_route("*", "/{tail:.*}", self._unknown_route)
        # A short shutdown timeout: a test that stops mid-stream should not wait a minute.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self._host, 0).start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening; recorded traffic stays available for assertions."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to OpenAI clients: ``http://127.0.0.1:PORT/v1``."""
        if self._port is None:
            raise RuntimeError("FakeLLMServer is not started")
        return f"http://{self._host}:{self._port}/v1"

    # -- scripting ----------------------------------------------------------

    def script(self, model: str, replies: Iterable[Reply]) -> None:
        """Queue replies for ``model``; each request for it takes the next one."""
        replies = list(replies)
        for reply in replies:
            _check_reply(reply)
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)

    def default(self, model: str, reply: Reply) -> None:
        """Answer ``model`` with ``reply`` whenever its queue is empty."""
        _check_reply(reply)
        with self._lock:
            self._defaults[model] = reply

    def set_handler(self, model: str, handler: Handler | None) -> None:
        """Ask ``handler`` first for every request to ``model`` (``None`` removes it).

        The handler gets a copy of the request body; returning ``None`` lets the queue
        and default answer, so a handler can intercept only the prompts it cares about.
        """
        with self._lock:
            if handler is None:
                self._handlers.pop(model, None)
            else:
                self._handlers[model] = handler

    def remaining(self, model: str) -> int:
        """How many queued replies for ``model`` have not been used yet."""
        with self._lock:
            return len(self._queues.get(model, ()))

    @property
    def models(self) -> list[str]:
        """Every model name that has been scripted, given a default or a handler."""
        with self._lock:
            return sorted({*self._queues, *self._defaults, *self._handlers})

    # -- inspection ---------------------------------------------------------

    def requests_for(self, model: str) -> list[RecordedRequest]:
        """The chat-completion requests that asked for ``model``, in arrival order."""
        return [r for r in self.requests if r.path == CHAT_COMPLETIONS_PATH and r.model == model]

    def received_bytes(self) -> bytes:
        """Everything clients sent: request lines, headers and bodies, in arrival order.

        The request line and headers are rebuilt from what aiohttp parsed (names and
        values exactly as received); bodies are the raw bytes.
        """
        return b"".join(self._raw_requests)

    def received(self, text: str) -> bool:
        """Whether ``text`` reached the server anywhere, verbatim or JSON-escaped.

        A secret inside a JSON body may arrive escaped (``\\"``, ``\\u00e9``), so a plain
        byte search alone could miss it; this checks every form a JSON encoder produces.
        """
        data = self.received_bytes()
        forms = {
            text.encode(),
            json.dumps(text)[1:-1].encode(),
            json.dumps(text, ensure_ascii=False)[1:-1].encode(),
        }
        return any(form in data for form in forms)

    # -- HTTP handlers ------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._capture(request)
        headers = Headers(request.headers.items())
        payload, decode_problem = _decode_json(body)
        model = payload.get("model") if isinstance(payload.get("model"), str) else ""

        def record(status: int) -> None:
            self.requests.append(
                RecordedRequest(
                    path=request.path,
                    headers=headers,
                    json=payload,
                    status=status,
                    model=model,
                    at=time.monotonic(),
                    method=request.method,
                )
            )

        if not self._authorized(headers):
            record(401)
            return _invalid_key()
        try:
            if decode_problem is not None:
                raise _RequestError(decode_problem)
            _validate_chat_request(payload)
        except _RequestError as exc:
            self.problems.append(f"{request.method} {request.path} ({model!r}): {exc}")
            record(400)
            return web.json_response(
                _error(str(exc), "invalid_request_error", exc.code, exc.param), status=400
            )

        try:
            reply = await self._resolve(await self._choose(model, payload), payload)
        except _ScriptError as exc:
            self.problems.append(f"scripting error for model {model!r}: {exc}")
            record(500)
            # Tell the client not to retry: the script will not get better on its own.
            return web.json_response(
                _error(f"FakeLLMServer scripting error: {exc}", "server_error"),
                status=500,
                headers={"x-should-retry": "false"},
            )

        if isinstance(reply, HttpError):
            record(reply.status)
            return web.json_response(
                reply.error_body(), status=reply.status, headers=dict(reply.headers or {})
            )

        answer = self._answer(reply)
        record(200)
        self._completions += 1
        completion_id = f"chatcmpl-fake{self._completions:06d}"
        created = _CREATED_BASE + self._completions
        prompt_words = _prompt_words(payload)
        usage = {
            "prompt_tokens": prompt_words,
            "completion_tokens": answer.completion_words,
            "total_tokens": prompt_words + answer.completion_words,
        }
        if payload.get("stream"):
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            return await _stream(
                request, completion_id, created, model, answer, usage if include_usage else None
            )
        message: JsonDict = {
            "role": "assistant",
            "content": answer.content,
            "refusal": None,
            "annotations": [],
        }
        if answer.tool_calls:
            message["tool_calls"] = answer.tool_calls
        return web.json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": answer.finish_reason,
                    }
                ],
                "usage": usage,
            }
        )

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._capture(request)
        headers = Headers(request.headers.items())
        authorized = self._authorized(headers)
        self.requests.append(
            RecordedRequest(
                path=request.path,
                headers=headers,
                json={},
                status=200 if authorized else 401,
                model="",
                at=time.monotonic(),
                method=request.method,
            )
        )
        if not authorized:
            return _invalid_key()
        data = [
            {"id": name, "object": "model", "created": _CREATED_BASE, "owned_by": "fake-llm"}
            for name in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _unknown_route(self, request: web.Request) -> web.StreamResponse:
        """Answer like OpenAI does for a wrong URL, and flag it: usually a bad base_url."""
        body = await self._capture(request)
        payload, _ = _decode_json(body)
        self.requests.append(
            RecordedRequest(
                path=request.path,
                headers=Headers(request.headers.items()),
                json=payload,
                status=404,
                model=payload.get("model") if isinstance(payload.get("model"), str) else "",
                at=time.monotonic(),
                method=request.method,
            )
        )
        message = f"Invalid URL ({request.method} {request.path})"
        self.problems.append(message)
        return web.json_response(_error(message, "invalid_request_error"), status=404)

    # -- helpers ------------------------------------------------------------

    async def _capture(self, request: web.Request) -> bytes:
        """Read the body and keep the request's bytes for ``received_bytes``."""
        body = await request.read()
        version = f"{request.version.major}.{request.version.minor}"
        head = f"{request.method} {request.raw_path} HTTP/{version}\r\n".encode()
        head += b"".join(name + b": " + value + b"\r\n" for name, value in request.raw_headers)
        self.raw_bodies.append(body)
        self._raw_requests.append(head + b"\r\n" + body)
        return body

    def _authorized(self, headers: Headers) -> bool:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and key.strip() in self.valid_keys

    async def _choose(self, model: str, payload: JsonDict) -> Reply:
        """Pick the reply for this request: handler, then queue, then defaults."""
        with self._lock:
            handler = self._handlers.get(model)
        if handler is not None:
            produced = handler(copy.deepcopy(payload))
            if inspect.isawaitable(produced):
                produced = await produced
            if produced is not None:
                return produced
        with self._lock:
            queue = self._queues.get(model)
            if queue:
                return queue.popleft()
            return self._defaults.get(model, self._fallback)

    async def _resolve(self, reply: Reply, payload: JsonDict) -> str | ToolCall | HttpError:
        """Call function replies until a concrete reply comes out."""
        for _ in range(_MAX_REPLY_NESTING):
            if isinstance(reply, str | ToolCall | HttpError):
                return reply
            if not callable(reply):
                raise _ScriptError(f"unsupported reply {reply!r}")
            produced = reply(copy.deepcopy(payload))
            if inspect.isawaitable(produced):
                produced = await produced
            if produced is None:
                raise _ScriptError(f"reply function {reply!r} returned None")
            reply = produced
        raise _ScriptError(f"reply functions nested more than {_MAX_REPLY_NESTING} deep")

    def _answer(self, reply: str | ToolCall) -> _Answer:
        if isinstance(reply, str):
            return _Answer(content=reply, tool_calls=None, completion_words=_words(reply))
        self._tool_calls += 1
        arguments = reply.arguments_json()
        call = {
            "id": reply.id or f"call_fake{self._tool_calls:06d}",
            "type": "function",
            "function": {"name": reply.name, "arguments": arguments},
        }
        return _Answer(
            content=None,
            tool_calls=[call],
            completion_words=_words(reply.name) + _words(arguments),
        )


# ---------------------------------------------------------------------------
# Wire format
# ---------------------------------------------------------------------------


def _error(message: str, kind: str, code: str | None = None, param: str | None = None) -> JsonDict:
    """OpenAI's error object; ``openai`` reads ``message`` and ``code`` from it."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _invalid_key() -> web.Response:
    # Unlike the real API, not even a masked key is echoed: tests check that secrets never
    # appear in anything the app might log, including error messages.
    return web.json_response(
        _error("Incorrect API key provided", "invalid_request_error", "invalid_api_key"),
        status=401,
    )


async def _stream(
    request: web.Request,
    completion_id: str,
    created: int,
    model: str,
    answer: _Answer,
    usage: JsonDict | None,
) -> web.StreamResponse:
    """Send the answer as server-sent events the way OpenAI chunks it.

    A role chunk, then content (or tool-call argument) pieces, then a chunk carrying only
    ``finish_reason``; with ``include_usage`` every chunk has ``"usage": null`` and a last
    chunk with no choices carries the usage, then ``data: [DONE]``.
    """
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)

    def chunk(choices: list[JsonDict], final_usage: JsonDict | None = None) -> bytes:
        body: JsonDict = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = final_usage
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    def delta(content: JsonDict, finish_reason: str | None = None) -> list[JsonDict]:
        return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish_reason}]

    events: list[bytes] = []
    if answer.tool_calls:
        call = answer.tool_calls[0]
        function = {"name": call["function"]["name"], "arguments": ""}
        first = {"index": 0, "id": call["id"], "type": "function", "function": function}
        events.append(chunk(delta({"role": "assistant", "content": None, "tool_calls": [first]})))
        for piece in _pieces(call["function"]["arguments"]):
            part = {"index": 0, "function": {"arguments": piece}}
            events.append(chunk(delta({"tool_calls": [part]})))
    else:
        events.append(chunk(delta({"role": "assistant", "content": "", "refusal": None})))
        for piece in _pieces(answer.content or ""):
            events.append(chunk(delta({"content": piece})))
    events.append(chunk(delta({}, answer.finish_reason)))
    if usage is not None:
        events.append(chunk([], usage))
    events.append(b"data: [DONE]\n\n")
    try:
        for event in events:
            await response.write(event)
        await response.write_eof()
    except ConnectionResetError:
        pass  # The client stopped reading (e.g. a cancelled run); nothing left to do.
    return response


def _pieces(text: str) -> list[str]:
    return [piece for piece in _STREAM_SPLIT.split(text) if piece]


def _decode_json(body: bytes) -> tuple[JsonDict, str | None]:
    """The body as a JSON object, or ``{}`` and the reason it is not one."""
    try:
        value = json.loads(body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"We could not parse the JSON body of your request. ({exc})"
    if not isinstance(value, dict):
        return {}, "We could not parse the JSON body of your request: expected an object."
    return value, None


def _validate_chat_request(payload: JsonDict) -> None:
    """Refuse what the real API refuses, with its wording, so app bugs surface in tests.

    Only rules the real API is known to enforce are checked; a false refusal here would
    send someone chasing a bug that production does not have.
    """
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        raise _RequestError("you must provide a model parameter", "model")
    messages = payload.get("messages")
    if not isinstance(messages, list):
        raise _RequestError("Missing required parameter: 'messages'.", "messages")
    if not messages:
        raise _RequestError("[] is too short - 'messages'", "messages")
    if payload.get("stream_options") is not None and not payload.get("stream"):
        raise _RequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    for index, tool in enumerate(payload.get("tools") or []):
        name = (tool.get("function") or {}).get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not _NAME.match(name):
            raise _bad_name(f"tools[{index}].function.name")
    _validate_tool_sequence(messages)
    for index, message in enumerate(messages):
        if "name" in message and not (
            isinstance(message["name"], str) and _NAME.match(message["name"])
        ):
            raise _bad_name(f"messages[{index}].name")


def _bad_name(param: str) -> _RequestError:
    return _RequestError(
        f"Invalid '{param}': string does not match pattern. "
        "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
        param,
        "invalid_value",
    )


def _validate_tool_sequence(messages: list[Any]) -> None:
    """Every tool call must be answered by tool messages right after it, and only then."""
    pending: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise _RequestError(
                f"Invalid value for 'messages[{index}].role'.", f"messages[{index}].role"
            )
        role = message["role"]
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                raise _RequestError(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            pending.remove(call_id)
            continue
        if pending:
            raise _unanswered_tool_calls(pending)
        if role == "assistant" and message.get("tool_calls"):
            pending = [call.get("id") for call in message["tool_calls"]]
    if pending:
        raise _unanswered_tool_calls(pending)


def _unanswered_tool_calls(call_ids: list[str]) -> _RequestError:
    return _RequestError(
        "An assistant message with 'tool_calls' must be followed by tool messages "
        "responding to each 'tool_call_id'. The following tool_call_ids did not have "
        f"response messages: {', '.join(map(str, call_ids))}",
        "messages",
    )


def _words(text: str) -> int:
    return len(text.split())


def _prompt_words(payload: JsonDict) -> int:
    """A rough token count: words in every message's text and tool calls."""
    total = 0
    for message in payload.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            total += _words(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += _words(part["text"])
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += _words(str(function.get("name", ""))) + _words(
                str(function.get("arguments", ""))
            )
    return total


def _check_reply(reply: object) -> None:
    """Fail at scripting time, where the stack trace points at the test's mistake."""
    if not (isinstance(reply, str | ToolCall | HttpError) or callable(reply)):
        raise TypeError(
            f"a reply must be str, ToolCall, HttpError or a callable, not {type(reply).__name__}"
        )
