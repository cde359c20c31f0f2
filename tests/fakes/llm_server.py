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

The server is split by job: ``llm_records`` holds the scripted replies (``ToolCall``,
``HttpError``) and what is recorded (``RecordedRequest``, ``Headers``), ``llm_script``
chooses the reply for each request, ``llm_validation`` refuses what the real API refuses
and ``llm_wire`` speaks OpenAI's wire format. This module serves HTTP with them and
re-exports the names tests import.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable

from aiohttp import web

from tests.fakes.llm_records import (
    Handler,
    Headers,
    HttpError,
    RecordedRequest,
    Reply,
    ToolCall,
)
from tests.fakes.llm_script import FALLBACK_REPLY, ReplyScript, ScriptError
from tests.fakes.llm_validation import RequestError, decode_json, validate_chat_request
from tests.fakes.llm_wire import (
    CHAT_COMPLETIONS_PATH,
    CREATED_BASE,
    MODELS_PATH,
    Answer,
    JsonDict,
    completion_body,
    error,
    invalid_key,
    models_body,
    prompt_words,
    stream,
    usage_for,
    words,
)

__all__ = [
    "FakeLLMServer",
    "Handler",
    "Headers",
    "HttpError",
    "RecordedRequest",
    "Reply",
    "ToolCall",
]

DEFAULT_API_KEY = "sk-test"


class FakeLLMServer:
    """An aiohttp server on 127.0.0.1 speaking OpenAI's chat-completions API.

    All state lives on the instance and is changed only from the event loop's thread
    between awaits, except the script, which takes a lock for every access, so concurrent
    requests and scripting from a test while the app runs are safe.
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
        # Streamed answers: seconds between pieces (a model writing), and per streamed
        # answer each piece sent as (time.monotonic(), text), so a test or the benchmark
        # can time what the app shows against what the model wrote.
        self.stream_pace_s = 0.0
        # Seconds each answer waits before it starts: a model's time to first byte, for
        # the benchmark (tests leave it at 0).
        self.latency_s = 0.0
        self.streamed: list[list[tuple[float, str]]] = []
        # Each chat request as it arrives, before any latency: (time.monotonic(), model,
        # the decoded body).
        self.arrivals: list[tuple[float, str, JsonDict]] = []
        self._script = ReplyScript(fallback)
        self._host = host
        self._raw_requests: list[bytes] = []
        self._completions = 0
        self._tool_calls = 0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

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

    def script(self, model: str, replies: Iterable[Reply]) -> None:
        """Queue replies for ``model``; each request for it takes the next one."""
        self._script.queue(model, replies)

    def default(self, model: str, reply: Reply) -> None:
        """Answer ``model`` with ``reply`` whenever its queue is empty."""
        self._script.set_default(model, reply)

    def set_handler(self, model: str, handler: Handler | None) -> None:
        """Ask ``handler`` first for every request to ``model`` (``None`` removes it).

        The handler gets a copy of the request body; returning ``None`` lets the queue
        and default answer, so a handler can intercept only the prompts it cares about.
        """
        self._script.set_handler(model, handler)

    def remaining(self, model: str) -> int:
        """How many queued replies for ``model`` have not been used yet."""
        return self._script.remaining(model)

    @property
    def models(self) -> list[str]:
        """Every model name that has been scripted, given a default or a handler."""
        return self._script.models

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

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._capture(request)
        headers = Headers(request.headers.items())
        payload, decode_problem = decode_json(body)
        model = payload.get("model") if isinstance(payload.get("model"), str) else ""
        self.arrivals.append((time.monotonic(), model, payload))

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
            return invalid_key()
        try:
            if decode_problem is not None:
                raise RequestError(decode_problem)
            validate_chat_request(payload)
        except RequestError as exc:
            self.problems.append(f"{request.method} {request.path} ({model!r}): {exc}")
            record(400)
            return web.json_response(
                error(str(exc), "invalid_request_error", exc.code, exc.param), status=400
            )

        try:
            reply = await self._script.reply_for(model, payload)
        except ScriptError as exc:
            self.problems.append(f"scripting error for model {model!r}: {exc}")
            record(500)
            # Tell the client not to retry: the script will not get better on its own.
            return web.json_response(
                error(f"FakeLLMServer scripting error: {exc}", "server_error"),
                status=500,
                headers={"x-should-retry": "false"},
            )

        if isinstance(reply, HttpError):
            record(reply.status)
            return web.json_response(
                reply.error_body(), status=reply.status, headers=dict(reply.headers or {})
            )

        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        answer = self._answer(reply)
        record(200)
        self._completions += 1
        completion_id = f"chatcmpl-fake{self._completions:06d}"
        created = CREATED_BASE + self._completions
        usage = usage_for(prompt_words(payload), answer)
        if payload.get("stream"):
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            return await stream(
                request,
                completion_id,
                created,
                model,
                answer,
                usage if include_usage else None,
                pace_s=self.stream_pace_s,
                sent=self._stream_log(),
            )
        return web.json_response(completion_body(completion_id, created, model, answer, usage))

    def _stream_log(self) -> list[tuple[float, str]]:
        pieces: list[tuple[float, str]] = []
        self.streamed.append(pieces)
        return pieces

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
            return invalid_key()
        return web.json_response(models_body(self.models))

    async def _unknown_route(self, request: web.Request) -> web.StreamResponse:
        """Answer like OpenAI does for a wrong URL, and flag it: usually a bad base_url."""
        body = await self._capture(request)
        payload, _ = decode_json(body)
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
        return web.json_response(error(message, "invalid_request_error"), status=404)

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

    def _answer(self, reply: str | ToolCall) -> Answer:
        if isinstance(reply, str):
            return Answer(content=reply, tool_calls=None, completion_words=words(reply))
        self._tool_calls += 1
        arguments = reply.arguments_json()
        call = {
            "id": reply.id or f"call_fake{self._tool_calls:06d}",
            "type": "function",
            "function": {"name": reply.name, "arguments": arguments},
        }
        return Answer(
            content=None,
            tool_calls=[call],
            completion_words=words(reply.name) + words(arguments),
        )
