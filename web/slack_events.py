"""`/slack/events` (HTTP mode) on the web server, behind the request guard.

Every request is checked by `bot.guard` first (size, signature, age, body, payload shape,
whether the app handles it); only what passes reaches Bolt. A malformed request gets a 4xx
and one the app declines the empty 200 Slack expects, each with one log line that names the
reason and never quotes the request: neither produces a traceback or a Slack, LLM or
database call.
"""

from __future__ import annotations

import logging
import time

from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from bot.guard import DECLINED, MAX_BODY_BYTES, Checked, Refusal, check_request

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


def slack_events_endpoint(app: AsyncApp, *, signing_secret: str):
    async def slack_events(request: Request) -> Response:
        body = await _body(request)
        if body is None:
            log.info("refused a request to %s: body too large", EVENTS_PATH)
            return JSONResponse({"error": "body too large"}, status_code=413)
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        checked = check_request(headers, body, signing_secret=signing_secret, now=time.time())
        if isinstance(checked, Refusal):
            log.info("refused a request to %s: %s", EVENTS_PATH, checked.reason)
            if checked.status == DECLINED:
                return Response(status_code=DECLINED)
            return JSONResponse({"error": checked.reason}, status_code=checked.status)
        bolt_request = _bolt_request(checked, headers, request.url.query)
        return to_starlette_response(await app.async_dispatch(bolt_request))

    return slack_events


async def _body(request: Request) -> bytes | None:
    """The body, or None past MAX_BODY_BYTES (read no further: a client cannot make the
    server hold more than that, whatever Content-Length says)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return b""  # the guard refuses an empty body; nobody is there to read the answer
    return b"".join(chunks)


def _bolt_request(checked: Checked, headers: dict[str, list[str]], query: str) -> AsyncBoltRequest:
    """Bolt's request with the guard's parse of the body (see `guard.parse`), which Bolt's
    own parser would get wrong; the raw text is kept for Bolt's signature check."""
    bolt_request = AsyncBoltRequest(body="", query=query, headers=headers)
    bolt_request.raw_body = checked.text
    bolt_request.body = checked.payload
    bolt_request.context = build_async_context(AsyncBoltContext({}), checked.payload)
    return bolt_request
