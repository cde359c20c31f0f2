"""Run the app: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT.

SIGTERM/SIGINT: stop taking new work, let runs reach a saved state (they are handed back to
the queue from their last saved turn), post what is pending, and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import create_app, web_client
from bot.http_server import health_application, serve_http, web_application
from bot.publisher import Publisher
from bot.services import Services
from bot.socket_mode import serve_socket_mode
from runner.manager import RunManager
from runner.team import check_team_config
from store import Store
from store.records import RunStatus
from store.settings import ConfigError, Settings

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
    host: str = "0.0.0.0",  # noqa: S104 - Slack must reach it; put TLS in front
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Check the configuration, start the runner and the publisher, serve Slack until
    `stop` (or SIGTERM / SIGINT), then hand running runs back and post what is pending."""
    settings.require_slack()
    await check_team_config(settings)
    identity = await check_token(settings)
    store = await Store.open(settings)
    runs = RunManager(store, settings)
    services = Services(
        settings,
        runs,
        trigger_client=web_client(settings, retries=False),
        workspace_url=str(identity.get("url") or "") or None,
    )
    app = create_app(services, web_client(settings))
    publisher = Publisher(
        store,
        web_client(settings, retries=False),
        owner=runs.instance_id,
        # A replica killed mid-post leaves its publishing claim; others may take it over
        # after three of its run leases (90 s by default), when its runs are recovered too.
        claim_s=3 * settings.run_lease_s,
        on_unshowable=lambda run_id, reason: runs.abandon_unshowable(run_id, reason=reason),
        agent_identities=CUSTOMIZE_SCOPE in identity["scopes"],
        drafts=runs.drafts if settings.streaming else None,
    )
    stop = _stopped_by_signals(stop or asyncio.Event())
    await runs.start()
    await publisher.start()
    log.info("connected to Slack as %s in %s", identity.get("user"), identity.get("team"))
    try:
        if settings.slack_app_token is not None:
            probes = asyncio.create_task(
                _serve_health(
                    health_application(lambda: health(store, runs)), host, settings.port, stop
                )
            )
            try:
                await serve_socket_mode(
                    app,
                    app_token=settings.slack_app_token.get_secret_value(),
                    client=web_client(settings),
                    ready=ready,
                    stop=stop,
                )
            finally:
                stop.set()
                await probes
        else:
            assert settings.slack_signing_secret is not None  # require_slack checked it
            web_app = web_application(
                app,
                signing_secret=settings.slack_signing_secret.get_secret_value(),
                health=lambda: health(store, runs),
            )
            await serve_http(web_app, host=host, port=settings.port, ready=ready, stop=stop)
    finally:
        log.info("shutting down: letting runs reach a saved state")
        await runs.stop()
        await publisher.stop()
        await store.close()


async def _serve_health(web_app: Any, host: str, port: int, stop: asyncio.Event) -> None:
    """/healthz beside Socket Mode; a port already taken costs the probe, not the app."""
    try:
        await serve_http(
            web_app,
            host=host,
            port=port,
            ready=None,
            stop=stop,
            path="/healthz",
            mode="Socket Mode health",
        )
    except OSError as exc:
        log.warning("/healthz not served on port %d (%s)", port, exc.strerror or type(exc).__name__)


def _stopped_by_signals(stop: asyncio.Event) -> asyncio.Event:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
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
