"""A local stand-in for the Slack Web API, spoken to over real HTTP.

No Slack workspace is reachable from the test machines, yet the end-to-end tests must
exercise the real ``slack_sdk`` client, its HTTP stack and its error handling. This module
runs a small aiohttp server that answers the Web API methods the app uses the way Slack
does (HTTP 200 with ``ok``/``error``), keeps the resulting workspace state (messages,
threads, ephemerals, modals), records every call, and checks every Block Kit payload so
that a message Slack would refuse fails here too instead of passing silently.

Typical use::

    async with SlackApiEmulator(member_channels={"C1"}) as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
        ...
        await slack.wait_for(lambda s: len(s.calls_to("chat.postMessage")) == 2)
        assert slack.problems == []

Socket Mode is emulated too: give the emulator an app-level token
(``SlackApiEmulator(app_token="xapp-test")``) and ``apps.connections.open`` hands the app a
``ws://`` URL served here. The emulator greets each connection with ``hello`` like Slack,
and a test plays Slack's part with ``await slack.socket_send("slash_commands", {...})``,
which delivers an envelope and returns the app's acknowledgement::

    async with SlackApiEmulator(app_token="xapp-test") as slack:
        ...  # start the app in Socket Mode with SLACK_API_URL=slack.api_url
        await slack.wait_for_socket()
        ack = await slack.socket_send("slash_commands", {"command": "/autogen", ...})
        assert "payload" not in ack  # a bare ack: the app answers later, via the Web API

Every Block Kit payload goes through ``tests.fakes.block_kit_rules``. The emulator is split
by job: ``slack_emulator_base`` (state, call log, problems, ``wait_for``), ``slack_messages``,
``slack_streams`` (streaming messages, their rate tiers), ``slack_events`` (message events
sent over Socket Mode or HTTP),
``slack_views``, ``slack_response_urls``, ``slack_socket_mode``, with the recorded data types
in ``slack_records`` and request decoding in ``slack_wire``. This module puts them together
and re-exports the names tests import.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping
from functools import cached_property

from aiohttp import web

from tests.fakes.block_kit_rules import (
    find_block_problems,
    find_message_problems,
    find_view_problems,
)
from tests.fakes.slack_events import EventsMixin
from tests.fakes.slack_records import (
    FailureRule,
    JsonDict,
    RecordedCall,
    SocketConnection,
    SocketEnvelope,
)
from tests.fakes.slack_response_urls import ResponseUrlsMixin
from tests.fakes.slack_socket_mode import SOCKET_ACK_DEADLINE_S, SOCKET_PATH
from tests.fakes.slack_views import ViewsMixin
from tests.fakes.slack_wire import ApiError, bearer_token, error_body, read_params

__all__ = [
    "SOCKET_ACK_DEADLINE_S",
    "FailureRule",
    "RecordedCall",
    "SlackApiEmulator",
    "SocketConnection",
    "SocketEnvelope",
    "find_block_problems",
    "find_message_problems",
    "find_view_problems",
]

# Methods that take the app-level token (xapp-...) instead of the bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


class SlackApiEmulator(EventsMixin, ResponseUrlsMixin, ViewsMixin):
    """A fake Slack workspace reachable at ``api_url``, holding state and a call log.

    Every answer is built synchronously after the request body is read, so concurrent calls
    from the app never interleave half-applied state.
    """

    @cached_property
    def _handlers(self) -> dict[str, Callable[[JsonDict], JsonDict]]:
        """The Web API methods the emulator answers, by name."""
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.startStream": self._chat_start_stream,
            "chat.appendStream": self._chat_append_stream,
            "chat.stopStream": self._chat_stop_stream,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.info": self._conversations_info,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "apps.connections.open": self._apps_connections_open,
        }

    async def __aenter__(self) -> SlackApiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on a free port of ``host``; the OS picks it so parallel runs never clash."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{hook_id}", self._handle_response_url)
        app.router.add_get(SOCKET_PATH + "{ticket}", self._handle_socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        await self._close_sockets()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
        error: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` ("*" for any) with an HTTP error.

        429 answers carry ``Retry-After`` and ``ratelimited`` like Slack's rate limiter (503
        also carries ``Retry-After``); other statuses get an error body. Failed calls are
        recorded and change no state. Use method ``"response_url"`` to fail response_url posts.
        """
        rule = FailureRule(status, retry_after, error or _default_error(status), times=times)
        self._failures.setdefault(method, []).append(rule)

    def slow(self, method: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``method`` for ``seconds`` before Slack acts on
        them, like a slow or congested API; the call then succeeds as usual.

        While a call is held, ``in_flight[method]`` counts it, and ``held`` names its method
        from the moment the hold begins, so a test can wait until the app's call is on its
        way (``await slack.wait_for(lambda s: s.in_flight.get("chat.postMessage"))``)."""
        self._delays.setdefault(method, []).extend([seconds] * times)

    def fail_ratio(
        self,
        method: str,
        ratio: float = 0.3,
        status: int = 429,
        retry_after: int | None = 0,
        seed: int = 1234,
        error: str | None = None,
    ) -> None:
        """Fail a deterministic share of ``method`` calls, drawn from ``Random(seed)``."""
        if not 0.0 <= ratio <= 1.0:
            raise ValueError("ratio must be within 0..1")
        rule = FailureRule(
            status,
            retry_after,
            error or _default_error(status),
            ratio=ratio,
            rng=random.Random(seed),
        )
        self._failures.setdefault(method, []).append(rule)

    def clear_failures(self) -> None:
        """Stop injecting failures (pending ``fail`` counts are dropped)."""
        self._failures.clear()

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        headers = dict(request.headers)
        try:
            params = await read_params(request)
        except (ApiError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            params = {}
            body: JsonDict = {"ok": False, "error": "invalid_json"}
            self._problem(method, "invalid_json", [str(exc)])
            return self._answer(method, params, headers, 200, body, {}, request.path)
        delays = self._delays.get(method)
        if not delays:
            status, body, extra = self._dispatch(method, params, headers)
            return self._answer(method, params, headers, status, body, extra, request.path)
        self.held.append(method)
        self.in_flight[method] = self.in_flight.get(method, 0) + 1
        try:
            await asyncio.sleep(delays.pop(0))
            status, body, extra = self._dispatch(method, params, headers)
            return self._answer(method, params, headers, status, body, extra, request.path)
        finally:
            self.in_flight[method] -= 1

    def _dispatch(
        self, method: str, params: JsonDict, headers: Mapping[str, str]
    ) -> tuple[int, JsonDict, dict[str, str]]:
        """Route one API call: method lookup, auth, injected failures, then the handler."""
        handler = self._handlers.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        token = bearer_token(headers, params)
        if token is None:
            return 200, {"ok": False, "error": "not_authed"}, {}
        auth_error = self._token_error(method, token)
        if auth_error is not None:
            return 200, {"ok": False, "error": auth_error}, {}
        injected = self._injected_failure(method)
        if injected is not None:
            return injected
        wait = self._tier_wait(method)
        if wait is None:
            wait = self._channel_wait(method, params)
        if wait is not None:  # over the method's rate tier, or the channel's posting limit
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}
        try:
            return 200, {"ok": True, **handler(params)}, {}
        except ApiError as exc:
            return 200, error_body(exc), {}

    def _channel_wait(self, method: str, params: JsonDict) -> int | None:
        """Slack's special limit on posting: about one message per second per channel,
        short bursts allowed. With `posts_per_channel_s` set, a `chat.postMessage` past
        that many in the last second to one channel gets 429 and `Retry-After: 1`."""
        if self.posts_per_channel_s is None or method != "chat.postMessage":
            return None
        channel = str(params.get("channel") or "")
        now = time.monotonic()
        recent = 0
        for call in reversed(self.calls):
            if now - call.at >= 1.0:
                break
            if call.method == method and call.ok and call.params.get("channel") == channel:
                recent += 1
        return 1 if recent >= self.posts_per_channel_s else None

    def _token_error(self, method: str, token: str) -> str | None:
        """Slack's answer to a token that does not fit the method, else ``None``.

        ``apps.connections.open`` takes only the app-level token; every other method takes
        the bot token. The right kind of token with the wrong value is ``invalid_auth``.
        """
        if method in _APP_TOKEN_METHODS:
            if token == self.bot_token:
                return "not_allowed_token_type"
            if self.app_token is not None and token == self.app_token:
                return None
            return "invalid_auth"
        if token == self.bot_token:
            return None
        if self.app_token is not None and token == self.app_token:
            return "not_allowed_token_type"
        return "invalid_auth"

    def _answer(
        self,
        method: str,
        params: JsonDict,
        headers: dict[str, str],
        status: int,
        body: JsonDict,
        extra_headers: dict[str, str],
        path: str,
    ) -> web.Response:
        self._record(method, params, headers, status, body, path)
        scopes = {"X-OAuth-Scopes": ",".join(sorted(self.scopes))}
        return web.json_response(body, status=status, headers={**scopes, **extra_headers})

    def _auth_test(self, params: JsonDict) -> JsonDict:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "user": "autogen",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }


def _default_error(status: int) -> str:
    return {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}.get(
        status, "request_failed"
    )
