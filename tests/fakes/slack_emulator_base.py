"""The state every part of the Slack emulator shares, and the bookkeeping around it.

``EmulatorBase`` holds the workspace (messages, views, response_urls, Socket Mode
connections), the call log and the list of problems, and offers what every Web API
method and test needs: recording calls, noting problems, injected failures, message
timestamps, ``wait_for`` and ``summary``. ``SlackApiEmulator`` (``tests.fakes.slack_api``)
combines it with the mixins that answer the methods.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Self

from aiohttp import web

from tests.fakes.slack_records import (
    FailureRule,
    JsonDict,
    RecordedCall,
    SocketConnection,
    SocketEnvelope,
)
from tests.fakes.slack_wire import ApiError

__all__ = ["DEFAULT_BOT_TOKEN", "EmulatorBase"]
DEFAULT_SCOPES = ("commands", "chat:write", "chat:write.customize")

DEFAULT_BOT_TOKEN = "xoxb-test"
_FIRST_TS_MICROS = 1_700_000_000_000_000
_TS_STEP_MICROS = 100


class EmulatorBase:
    """The fake workspace's identity, state, call log and problems, without any handlers."""

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str | None = None,
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_id: str = "T1",
        team_domain: str = "autogen-test",
        app_id: str = "AAPP",
        member_channels: Iterable[str] = ("C1",),
        channel_names: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        scopes: Iterable[str] = DEFAULT_SCOPES,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.team_domain = team_domain
        self.app_id = app_id
        self.member_channels: set[str] = set(member_channels)
        self.channel_names: dict[str, str] = dict(channel_names or {})
        self.host = host
        # The bot token's scopes: Slack names them in every Web API answer's
        # X-OAuth-Scopes header, and some methods' arguments depend on them.
        self.scopes: set[str] = set(scopes)
        # Posts per second per channel Slack allows (`chat.postMessage`); None: no limit,
        # as most tests want. The benchmark sets it to measure delivery at Slack's limit.
        self.posts_per_channel_s: int | None = None

        self.calls: list[RecordedCall] = []
        self.problems: list[str] = []
        self.messages: dict[tuple[str, str], JsonDict] = {}
        self.deleted_messages: dict[tuple[str, str], JsonDict] = {}
        self.ephemerals: list[JsonDict] = []
        # username / icon arguments Slack ignored (no chat:write.customize), as sent.
        self.ignored_customizations: list[JsonDict] = []
        self.deleted: list[JsonDict] = []
        self.views: dict[str, JsonDict] = {}
        self.views_opened: list[JsonDict] = []
        self.views_pushed: list[JsonDict] = []
        self.home_views: dict[str, JsonDict] = {}  # each user's Home tab, as last published
        self.responses: dict[str, list[JsonDict]] = {}
        # Calls ``slow`` is holding right now, by method, and every method whose call it
        # started holding (in order): a test waits on these to know a call is in flight.
        self.in_flight: dict[str, int] = {}
        self.held: list[str] = []
        self.socket_connections: list[SocketConnection] = []
        self.socket_envelopes: list[SocketEnvelope] = []

        self._response_links: dict[str, tuple[str | None, str | None]] = {}
        self._failures: dict[str, list[FailureRule]] = {}
        self._delays: dict[str, list[float]] = {}
        self._used_triggers: set[str] = set()
        self._ts_counter = itertools.count(1)
        self._view_counter = itertools.count(1)
        self._hook_counter = itertools.count(1)
        self._ticket_counter = itertools.count(1)
        self._connection_counter = itertools.count(1)
        self._envelope_counter = itertools.count(1)
        self._socket_tickets: set[str] = set()
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._envelopes_by_id: dict[str, SocketEnvelope] = {}
        self._ack_waiters: dict[str, asyncio.Future[JsonDict]] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._port is None:
            raise RuntimeError("SlackApiEmulator is not running; use 'async with' or start()")
        return f"http://{self.host}:{self._port}"

    @property
    def api_url(self) -> str:
        """Give this to ``AsyncWebClient(base_url=...)``; the SDK appends the method name."""
        return f"{self.base_url}/api/"

    def calls_to(self, method: str) -> list[RecordedCall]:
        """Recorded calls of one method, oldest first (failed ones included)."""
        return [call for call in self.calls if call.method == method]

    async def wait_for(
        self,
        predicate: Callable[[Self], Any | Awaitable[Any]],
        timeout: float = 10.0,
        interval: float = 0.02,
    ) -> Any:
        """Poll until ``predicate(self)`` is truthy and return its value.

        The app answers Slack quickly and does the work in the background, so tests wait
        for effects instead of sleeping. On timeout the AssertionError lists the traffic
        seen, which usually explains what the app did instead. A ``LookupError`` from the
        predicate (``s.thread(...)[2]`` before the third reply exists) counts as "not yet".
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = await self._evaluate(predicate)
            if result:
                return result
            if loop.time() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self.summary()}")
            await asyncio.sleep(interval)

    async def _evaluate(self, predicate: Callable[[Self], Any]) -> Any:
        try:
            result = predicate(self)
            if inspect.isawaitable(result):
                result = await result
        except LookupError:
            return None
        return result

    def summary(self, last: int = 40) -> str:
        """A readable digest of recent calls and all problems, for assertion messages."""
        lines = [f"{len(self.calls)} call(s) recorded, showing the last {last}:"]
        start = max(0, len(self.calls) - last)
        for number, call in enumerate(self.calls[start:], start=start + 1):
            outcome = "ok" if call.ok else f"error={call.error}"
            lines.append(f"  #{number} {call.method} -> {call.status} {outcome} {_brief(call)}")
        if self.socket_connections or self.socket_envelopes:
            lines.extend(self._socket_summary(last))
        lines.append(f"problems ({len(self.problems)}):")
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)

    def _socket_summary(self, last: int) -> list[str]:
        open_count = len(self._sockets)
        lines = [
            f"socket mode: {len(self.socket_connections)} connection(s), {open_count} open; "
            f"{len(self.socket_envelopes)} envelope(s), showing the last {last}:"
        ]
        for record in self.socket_envelopes[-last:]:
            kind = record.envelope["payload"].get("type") or record.envelope["payload"].get(
                "command", ""
            )
            if record.ack is None:
                outcome = "not acknowledged"
            else:
                outcome = f"acked in {record.ack_latency:.2f}s"
                if "payload" in record.ack:
                    outcome += " with a payload"
            lines.append(f"  {record.envelope_id} {record.type} {kind} -> {outcome}")
        return lines

    def _record(
        self,
        method: str,
        params: JsonDict,
        headers: dict[str, str],
        status: int,
        body: JsonDict,
        path: str,
    ) -> None:
        call = RecordedCall(method, params, headers, status, body, time.monotonic(), path)
        self.calls.append(call)

    def _problem(self, method: str, error: str, reasons: Iterable[str]) -> None:
        """Note a payload Slack would refuse (or frown on), naming the call and why."""
        number = len(self.calls) + 1
        self.problems.append(f"{method} (call #{number}): {error}: " + "; ".join(reasons))

    def _warn_missing_fallback(self, method: str, payload: Mapping[str, Any]) -> None:
        if payload.get("blocks") and not payload.get("text"):
            reason = "blocks without a 'text' fallback (notifications would show nothing)"
            self._problem(method, "no_fallback_text", [reason])

    def _injected_failure(self, method: str) -> tuple[int, JsonDict, dict[str, str]] | None:
        for rule in self._failures.get(method, []) + self._failures.get("*", []):
            if rule.triggers():
                headers: dict[str, str] = {}
                if rule.retry_after is not None and rule.status in (429, 503):
                    headers["Retry-After"] = str(rule.retry_after)
                return rule.status, {"ok": False, "error": rule.error}, headers
        return None

    def _next_ts(self) -> str:
        micros = _FIRST_TS_MICROS + next(self._ts_counter) * _TS_STEP_MICROS
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _require(self, params: JsonDict, *names: str) -> None:
        missing = [name for name in names if not params.get(name)]
        if missing:
            raise ApiError("invalid_arguments", [f"missing required field: {n}" for n in missing])


def _brief(call: RecordedCall) -> str:
    """One-line gist of a call's arguments for ``summary``."""
    keys = ("channel", "ts", "thread_ts", "trigger_id", "view_id")
    parts = [f"{k}={call.params[k]}" for k in keys if call.params.get(k)]
    text = call.params.get("text")
    if isinstance(text, str) and text:
        parts.append(f"text={text[:60]!r}")
    if call.params.get("blocks"):
        parts.append(f"blocks={len(call.params['blocks'])}")
    return " ".join(parts)
