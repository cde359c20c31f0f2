"""Socket Mode: Slack's requests over the app-level token's websocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.guard import handled, payload_problem

log = logging.getLogger(__name__)


class GuardedSocketModeHandler(AsyncSocketModeHandler):
    """Socket Mode payloads skip the HTTP guard; its shape and "handled" checks run here,
    before Bolt (which would otherwise fail to build a request from a malformed payload
    and never acknowledge the envelope). A refused envelope is acknowledged, so Slack
    does not redeliver it, and nothing else happens."""

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        payload = req.payload
        problem = payload_problem(payload) if isinstance(payload, dict) else "not an object"
        if problem is None and not handled(payload):
            problem = "not a request the app handles"
        if problem is not None:
            log.info("refused a Socket Mode payload: %s", problem)
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        await super().handle(client, req)


async def serve_socket_mode(
    app: AsyncApp,
    *,
    app_token: str,
    client: AsyncWebClient,
    ready: asyncio.Event | None,
    stop: asyncio.Event,
) -> None:
    handler = GuardedSocketModeHandler(
        app,
        app_token,
        # Bolt would hand the client its own logger; this one stays at INFO (logs.py),
        # so raw frames, which can carry a key, are never even formatted.
        logger=logging.getLogger("slack_sdk.socket_mode.aiohttp"),
        web_client=client,
    )
    # Connecting retries while Slack is unreachable; a stop signal still wins.
    connecting = asyncio.create_task(handler.connect_async())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if connecting.done():
            connecting.result()
            log.info("Socket Mode connected; waiting for /autogen")
            if ready:
                ready.set()
            await stop.wait()
        else:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
    finally:
        stopping.cancel()
        await handler.close_async()
