"""Build the Bolt app and the Web API clients from settings."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners import register
from bot.logs import install_secret_filter
from bot.services import CONTEXT_KEY, Services
from store.settings import Settings


def web_client(settings: Settings, *, retries: bool = True) -> AsyncWebClient:
    """Listeners' client retries only 429s (Slack did nothing, so a retry cannot post twice);
    a 5xx or a dropped connection may have posted, so it is reported, not retried. The
    publisher owns its retry policy, and a call that spends a trigger_id must not retry at
    all: both take `retries=False`."""
    assert settings.slack_bot_token is not None
    kwargs = {"base_url": settings.slack_api_url} if settings.slack_api_url else {}
    client = AsyncWebClient(token=settings.slack_bot_token.get_secret_value(), **kwargs)
    client.retry_handlers = [AsyncRateLimitErrorRetryHandler(max_retry_count=3)] if retries else []
    return client


class _OwnClientNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself and, given our client too,
    warns at every start that the token is unused: it is the same token, in the client."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_OWN_CLIENT_NOTICE = _OwnClientNotice()


def create_app(services: Services, client: AsyncWebClient) -> AsyncApp:
    install_secret_filter()
    signing_secret = services.settings.slack_signing_secret
    bolt_logger = logging.getLogger("slack_bolt.AsyncApp")
    bolt_logger.addFilter(_OWN_CLIENT_NOTICE)
    try:
        app = AsyncApp(
            # Named, or Bolt walks `inspect.stack()` (reading every frame's source file) to
            # name itself: a third of a second of start-up.
            name="autogen-slack",
            client=client,
            signing_secret=signing_secret.get_secret_value() if signing_secret else None,
            request_verification_enabled=signing_secret is not None,
        )
    finally:
        bolt_logger.removeFilter(_OWN_CLIENT_NOTICE)

    async def provide_services(
        context: AsyncBoltContext, next_: Callable[[], Awaitable[None]]
    ) -> None:
        context[CONTEXT_KEY] = services
        await next_()

    app.middleware(provide_services)
    register(app)
    return app
