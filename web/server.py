"""uvicorn serving the web application, under the app's own lifecycle.

The app owns signals (SIGTERM lets runs reach a saved state first), so uvicorn's own signal
handling is off; the socket is bound here, so a port already taken is an `OSError` the
caller decides about (fatal in HTTP and local mode, a warning beside Socket Mode) rather
than uvicorn's exit. Access logs are off: a request line is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from web.limits import BodyLimit

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the app's own handlers stay in place

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


class _InvalidRequestNotice(logging.Filter):
    """uvicorn warns of every request it cannot parse; a bad client is not the app's
    problem: one INFO line that never quotes the bytes. Its WebSocket lines quote the
    request line (path and query): not logged at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if '"WebSocket ' in message or message.startswith("connection "):
            return False  # a WebSocket's request line ("... [accepted]"), open and closed
        if message.startswith("Invalid HTTP request"):
            record.msg, record.args = "refused a malformed HTTP request", ()
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


_NOTICE = _InvalidRequestNotice()


class _Answered:
    """Starlette answers an unexpected HTTP error with the app's JSON 500, then raises it
    again for the server to log; it is logged already (`web.errors`), once, so stop it
    here. A WebSocket's failure is logged where it happens (`web.stream`)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # type: ignore[arg-type]
            return
        with contextlib.suppress(Exception):
            await self.app(scope, receive, send)  # type: ignore[arg-type]


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (OSError when the port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def serve_web(
    app: FastAPI,
    sock: socket.socket,
    *,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    on_stop: list | None = None,
) -> None:
    """Serve `app` on `sock` until `stop`; open WebSockets are told to go first
    (`on_stop`), then connections get SHUTDOWN_GRACE_S to finish."""
    config = uvicorn.Config(
        BodyLimit(_Answered(app)),
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="websockets-sansio",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        server_header=False,
        proxy_headers=True,
    )
    server = _Server(config)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(_NOTICE)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({serving, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if serving.done():
            serving.result()
        if ready is not None:
            ready.set()
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
    finally:
        for callback in on_stop or []:
            callback()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        uvicorn_log.removeFilter(_NOTICE)
        sock.close()
