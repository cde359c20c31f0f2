"""HTTP mode: /slack/events behind the request guard, and /healthz (Socket Mode serves
/healthz alone, for container probes).

Every request to /slack/events is checked by `bot.guard` first (signature, age, size, body,
payload shape, whether the app handles it); only what passes reaches Bolt. A malformed
request gets a 4xx and one that the app declines the empty 200 Slack expects, each with one
log line that names the reason and never quotes the request: neither produces a traceback
or a Slack, LLM or database call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.guard import DECLINED, MAX_BODY_BYTES, Checked, Refusal, check_request

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
Health = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


class _MalformedHttpNotice(logging.Filter):
    """aiohttp answers a request it cannot parse with a 400 and logs it at ERROR with a
    traceback, and does the same when a client hangs up before its body is complete (if
    the handler is already reading it); both are a bad client, not an error of the app:
    one INFO line, which names the problem's kind and never quotes the bytes received."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg = "refused a malformed HTTP request (%s %s)"
            record.args = (error.code, type(error).__name__)
        elif isinstance(error, ConnectionResetError):
            record.msg, record.args = "a client hung up before its request was complete", ()
        else:
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text = None, None
        return True


_MALFORMED_HTTP_NOTICE = _MalformedHttpNotice()


def web_application(app: AsyncApp, *, signing_secret: str, health: Health) -> web.Application:
    async def slack_events(request: web.Request) -> web.Response:
        body = await request.read()  # past client_max_size aiohttp answers 413 itself
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        checked = check_request(headers, body, signing_secret=signing_secret, now=time.time())
        if isinstance(checked, Refusal):
            log.info("refused a request to %s: %s", EVENTS_PATH, checked.reason)
            if checked.status == DECLINED:
                return web.Response(status=DECLINED)
            return web.json_response({"error": checked.reason}, status=checked.status)
        bolt_request = _bolt_request(checked, headers, request.query_string)
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    async def healthz(_request: web.Request) -> web.Response:
        status, report = await health()
        return web.json_response(report, status=status)

    web_app = web.Application(client_max_size=MAX_BODY_BYTES)
    web_app.router.add_post(EVENTS_PATH, slack_events)
    web_app.router.add_get("/healthz", healthz)
    return web_app


def health_application(health: Health) -> web.Application:
    """Only /healthz: what Socket Mode serves on PORT, for container probes (Slack itself
    comes over the socket)."""

    async def healthz(_request: web.Request) -> web.Response:
        status, report = await health()
        return web.json_response(report, status=status)

    web_app = web.Application(client_max_size=MAX_BODY_BYTES)
    web_app.router.add_get("/healthz", healthz)
    return web_app


def _bolt_request(checked: Checked, headers: dict[str, list[str]], query: str) -> AsyncBoltRequest:
    """Bolt's request with the guard's parse of the body (see `guard.parse`), which Bolt's
    own parser would get wrong; the raw text is kept for Bolt's signature check."""
    bolt_request = AsyncBoltRequest(body="", query=query, headers=headers)
    bolt_request.raw_body = checked.text
    bolt_request.body = checked.payload
    bolt_request.context = build_async_context(AsyncBoltContext({}), checked.payload)
    return bolt_request


async def serve_http(
    web_app: web.Application,
    *,
    host: str,
    port: int,
    ready: asyncio.Event | None,
    stop: asyncio.Event,
    path: str = EVENTS_PATH,
    mode: str = "HTTP mode",
) -> None:
    server_log = logging.getLogger("aiohttp.server")
    server_log.addFilter(_MALFORMED_HTTP_NOTICE)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("%s: listening on %s:%d%s", mode, host, port, path)
        if ready:
            ready.set()
        await stop.wait()
    finally:
        await runner.cleanup()
        server_log.removeFilter(_MALFORMED_HTTP_NOTICE)
