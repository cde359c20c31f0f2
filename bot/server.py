"""Run the app: Socket Mode when SLACK_APP_TOKEN is set, else Slack over HTTP on PORT, and
local mode (the playground and the API alone, on 127.0.0.1) when no Slack setting is set.
The web server on PORT always runs: /healthz, the API, the WebSocket, the playground.

SIGTERM/SIGINT: stop taking new work, let runs reach a saved state (they are handed back to
the queue from their last saved turn), post what is pending, and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import create_app, web_client
from bot.publisher import Publisher
from bot.services import Services
from bot.socket_mode import serve_socket_mode
from runner.manager import RunManager
from runner.team import check_team_config
from store import Store
from store.records import RunStatus
from store.settings import ConfigError, Settings
from web.app import create_web_app
from web.context import WebServices
from web.feed import RunFeed
from web.login import LoginCodes
from web.server import bind, serve_web

log = logging.getLogger(__name__)


CUSTOMIZE_SCOPE = "chat:write.customize"  # post as each agent (username, icon)


async def check_token(settings: Settings) -> dict:
    client = web_client(settings)
    try:
        response = await client.auth_test()
    except SlackApiError as exc:
        raise ConfigError(
            f"SLACK_BOT_TOKEN was refused by Slack ({exc.response.get('error', 'error')}): "
            "copy the Bot User OAuth Token (xoxb-...) again from OAuth & Permissions."
        ) from None
    except Exception as exc:  # any network failure is one clear line
        raise ConfigError(
            f"SLACK_BOT_TOKEN could not be checked: Slack's API was unreachable "
            f"({type(exc).__name__}); check SLACK_API_URL and the network."
        ) from None
    if settings.socket_mode:
        await check_app_token(settings, client)
    headers = {str(k).lower(): v for k, v in (response.headers or {}).items()}
    scopes = headers.get("x-oauth-scopes", "")
    scopes = ",".join(scopes) if isinstance(scopes, list) else str(scopes)
    return {**response.data, "scopes": {s.strip() for s in scopes.split(",") if s.strip()}}


async def check_app_token(settings: Settings, client: AsyncWebClient) -> None:
    """A wrong app-level token would otherwise make the Socket Mode client retry forever
    (every 10 s, unstoppable until it connects): ask Slack for a connection URL once."""
    assert settings.slack_app_token is not None
    try:
        await client.apps_connections_open(app_token=settings.slack_app_token.get_secret_value())
    except SlackApiError as exc:
        raise ConfigError(
            f"SLACK_APP_TOKEN was refused by Slack ({exc.response.get('error', 'error')}): "
            "copy the App-Level Token (xapp-..., scope connections:write) from Basic "
            "Information, or remove the line to run in HTTP mode."
        ) from None


async def serve(
    settings: Settings,
    *,
    host: str | None = None,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Check the configuration, start the runner, the web server and (with Slack set up)
    the publisher and Slack's side, serve until `stop` (or SIGTERM / SIGINT), then hand
    running runs back and post what is pending.

    Local mode (no Slack settings) listens on 127.0.0.1 only, whatever `host` says, and
    prints the one-time link that signs the browser in to the playground."""
    settings.require_slack()
    await check_team_config(settings)
    identity = None if settings.local_mode else await check_token(settings)
    # Slack must reach HTTP mode; put TLS in front. Socket Mode serves probes and the API.
    host = "127.0.0.1" if settings.local_mode else (host or "0.0.0.0")  # noqa: S104
    store = await Store.open(settings)
    runs = RunManager(store, settings, pace_to_threads=identity is not None)
    feed = RunFeed(store)
    logins = LoginCodes()
    web = WebServices(settings, runs, feed, logins)
    stop = _stopped_by_signals(stop or asyncio.Event(), hurry=runs.hurry)
    slack_app = None
    publisher = None
    if identity is not None:
        services = Services(
            settings,
            runs,
            trigger_client=web_client(settings, retries=False),
            workspace_url=str(identity.get("url") or "") or None,
        )
        slack_app = create_app(services, web_client(settings))
        publisher = Publisher(
            store,
            web_client(settings, retries=False),
            owner=runs.instance_id,
            # A replica killed mid-post leaves its publishing claim: it lapses after one run
            # lease, and the replica that recovers its runs frees it at once.
            claim_s=settings.run_lease_s,
            on_unshowable=lambda run_id, reason: runs.abandon_unshowable(run_id, reason=reason),
            agent_identities=CUSTOMIZE_SCOPE in identity["scopes"],
            drafts=runs.drafts if settings.streaming else None,
            keeps_claim=runs.executes,
        )
    over_http = slack_app is not None and not settings.socket_mode
    web_app = create_web_app(
        web,
        health=lambda: health(store, runs),
        slack=slack_app if over_http else None,
        signing_secret=(
            settings.slack_signing_secret.get_secret_value()
            if over_http and settings.slack_signing_secret
            else None
        ),
    )
    try:
        sock = _bind(host, settings.port, needed=not settings.socket_mode)
    except BaseException:
        await store.close()
        raise
    try:
        await runs.start()
        if publisher is not None:
            await publisher.start()
        if identity is not None:
            log.info("connected to Slack as %s in %s", identity.get("user"), identity.get("team"))
        await _serve_front_ends(web_app, sock, slack_app, settings, host, ready, stop, feed)
    finally:
        log.info("shutting down: letting runs reach a saved state")
        feed.close()
        if sock is not None:
            sock.close()  # closed already when the web server ran; not when it never did
        await runs.stop()
        if publisher is not None:
            await publisher.stop()
        await store.close()


def _bind(host: str, port: int, *, needed: bool) -> socket.socket | None:
    """The web server's socket. Beside Socket Mode a port already taken costs the probes
    and the API, not the app (a warning); otherwise it is the app's front door."""
    try:
        return bind(host, port)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if needed:
            raise ConfigError(
                f"PORT {port} cannot be used on {host} ({reason}): stop what uses it, or set "
                "PORT to another port."
            ) from None
        log.warning("the web server (/healthz, the API) is off: port %d (%s)", port, reason)
        return None


async def _serve_front_ends(
    web_app: FastAPI,
    sock: socket.socket | None,
    slack_app: AsyncApp | None,
    settings: Settings,
    host: str,
    ready: asyncio.Event | None,
    stop: asyncio.Event,
    feed: RunFeed,
) -> None:
    web_ready = asyncio.Event()
    serving = (
        asyncio.create_task(
            serve_web(web_app, sock, stop=stop, ready=web_ready, on_stop=[feed.close])
        )
        if sock is not None
        else None
    )
    try:
        if serving is not None:
            await _first(web_ready.wait(), serving)
            log.info(
                "web server on %s:%d (%s)",
                host,
                settings.port,
                _what_is_served(settings, slack_app),
            )
        if settings.local_mode:
            _print_sign_in_link(web_app, host, settings.port)
        if slack_app is not None and settings.socket_mode:
            assert settings.slack_app_token is not None
            await serve_socket_mode(
                slack_app,
                app_token=settings.slack_app_token.get_secret_value(),
                client=web_client(settings),
                ready=ready,
                stop=stop,
            )
        else:
            if ready is not None:
                ready.set()
            await stop.wait()
    finally:
        stop.set()
        if serving is not None:
            await serving


async def _first(waiting: Awaitable[object], serving: asyncio.Task[None]) -> None:
    """Until the server is up; its failure to start is raised here."""
    started = asyncio.ensure_future(waiting)
    await asyncio.wait({started, serving}, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        started.cancel()
        serving.result()


def _what_is_served(settings: Settings, slack_app: AsyncApp | None) -> str:
    parts = ["/healthz", "the API at /docs"]
    if slack_app is not None and not settings.socket_mode:
        parts.insert(0, "/slack/events")
    if settings.playground:
        parts.append("the playground at /")
    return ", ".join(parts)


def _print_sign_in_link(web_app: FastAPI, host: str, port: int) -> None:
    """The one line a newcomer needs: where to click (stdout, not the JSON log)."""
    if not web_app.state.services.settings.playground:
        print(
            f"autogen-slack is running locally: the API is at http://{host}:{port}/docs", flush=True
        )
        return
    code = web_app.state.services.logins.issue()
    print(
        f"autogen-slack is running locally: open http://{host}:{port}/login?code={code} "
        "(this link signs your browser in once)",
        flush=True,
    )


def _stopped_by_signals(stop: asyncio.Event, *, hurry: Callable[[], None]) -> asyncio.Event:
    """The first SIGTERM / Ctrl-C stops gracefully; a second one means now: turns are
    aborted at once (each run resumes later from its last saved turn)."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("stopping now: running turns are aborted (they resume later)")
            hurry()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal)
    return stop


async def health(store: Store, runs: RunManager) -> tuple[int, dict[str, Any]]:
    """Up means able to work: the database answers (a load balancer or Kubernetes probe
    then stops sending traffic to a replica that cannot)."""
    try:
        queued = await asyncio.wait_for(store.runs.count_by_status(RunStatus.QUEUED), timeout=2)
    except Exception as exc:  # any failure means "not healthy"
        log.warning("health check: database unavailable (%s)", type(exc).__name__)
        return 503, {"ok": False, "database": "unavailable"}
    return 200, {"ok": True, "active_runs": len(runs.active_run_ids), "queued_runs": queued}
