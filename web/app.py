"""The one web application on PORT: `/healthz`, `/slack/events` (HTTP mode), the REST API,
the WebSocket event stream and the playground, with the OpenAPI page at `/docs`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from slack_bolt.async_app import AsyncApp

from web import api, playground, stream
from web.context import WebServices
from web.errors import install_error_answers
from web.slack_events import EVENTS_PATH, slack_events_endpoint

Health = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]

DESCRIPTION = """Start, follow and steer AutoGen runs; give the keys they ask for.

Every request carries an API token: `Authorization: Bearer agt_...` (make one with
`python -m store create-token --user ID`). A run's events stream on `/ws/{task_id}`
(the same Authorization header); reconnect with `?after=<last seq>` for the rest."""


def create_web_app(
    web: WebServices,
    *,
    health: Health,
    slack: AsyncApp | None = None,
    signing_secret: str | None = None,
) -> FastAPI:
    """`slack`: the Bolt app when Slack comes over HTTP (`/slack/events`); None in Socket
    Mode and local mode."""
    app = FastAPI(
        title="autogen-slack",
        version="0.1.0",
        description=DESCRIPTION,
        redoc_url=None,
        redirect_slashes=False,  # a path is the path: /slack/events/ is not /slack/events
    )
    app.state.services = web
    install_error_answers(app)

    async def healthz() -> JSONResponse:
        status, report = await health()
        return JSONResponse(report, status_code=status)

    app.add_api_route("/healthz", healthz, methods=["GET", "HEAD"], include_in_schema=False)
    if slack is not None:
        assert signing_secret is not None
        app.add_api_route(
            EVENTS_PATH,
            slack_events_endpoint(slack, signing_secret=signing_secret),
            methods=["POST"],
            include_in_schema=False,
        )
    app.include_router(api.router)
    app.include_router(stream.router)
    if web.settings.playground:
        app.include_router(playground.router)
    return app
