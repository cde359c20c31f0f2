"""The publisher's Web API calls: bounded retries it owns, so it knows what was posted.

A 429 waits for `Retry-After` in full (a wait longer than `max_delay_s` gives up for now,
with the wait Slack asked for) and teaches the posting pace the channel's rate; 5xx answers
and connection errors back off; errors retrying cannot fix (`SlackRefused`) are raised at
once. Before every attempt a `before_attempt` check runs (the publishing claim's renewal):
a replica that lost the claim never posts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.posting_pace import PostingPace

log = logging.getLogger(__name__)

CHANNEL_GONE = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "thread_not_found", "restricted_action"}
)
"""Errors that mean the app cannot post in the channel (or thread) at all."""


POST = "chat_postMessage"  # the method Slack limits per channel


class SlackUnavailable(Exception):
    """Retries ran out (or Slack asked for a long pause); try again on a later pass."""

    def __init__(self, method: str, retry_after_s: float = 0.0) -> None:
        super().__init__(method)
        self.retry_after_s = retry_after_s


class SlackRefused(Exception):
    """Slack answered with an error that retrying cannot fix; the message is Slack's code."""

    @property
    def channel_gone(self) -> bool:
        return str(self) in CHANNEL_GONE


class ClaimLost(Exception):
    """Another replica now posts this run's events; stop before posting anything."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0


def _header(headers: Any, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else str(value)
    return None


class SlackCaller:
    def __init__(
        self,
        client: AsyncWebClient,
        policy: RetryPolicy,
        before_attempt: Callable[[], Awaitable[bool]] | None = None,
        pace: PostingPace | None = None,
        waiting: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self._client = client
        self._policy = policy
        self._before_attempt = before_attempt
        self._pace = pace  # posts spaced at each channel's rate (`bot.posting_pace`)
        # Around every wait (the pace, a backoff): the caller's pass gives its slot back.
        self._waiting = waiting or contextlib.nullcontext

    async def call(self, method: str, *, claimed: bool = True, **kwargs: Any) -> dict[str, Any]:
        """One Web API call (`chat_postMessage`, ...) with the retry policy; `claimed=False`
        skips the `before_attempt` check (for a call that needs no claim)."""
        policy = self._policy
        delay = policy.base_delay_s
        pace = self._pace if method == POST else None
        channel = str(kwargs.get("channel") or "")
        for attempt in range(1, policy.max_attempts + 1):
            if pace is not None and (wait := pace.reserve(channel)) > 0:
                async with self._waiting():
                    await asyncio.sleep(wait)
            if claimed and self._before_attempt is not None and not await self._before_attempt():
                raise ClaimLost(method)
            sent_at = asyncio.get_running_loop().time()
            try:
                response = await getattr(self._client, method)(**kwargs)
                if pace is not None:
                    pace.posted(channel, sent_at=sent_at)
                return dict(response.data) if isinstance(response.data, dict) else {}
            except SlackApiError as exc:
                status = exc.response.status_code
                if status == 429:
                    wait = float(_header(exc.response.headers, "Retry-After") or 1)
                    if pace is not None:
                        pace.limited(channel, wait)
                    if wait > policy.max_delay_s:
                        raise SlackUnavailable(method, retry_after_s=wait) from None
                elif status >= 500:
                    wait = delay
                else:
                    raise SlackRefused(str(exc.response.get("error", status))) from None
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.info("slack connection problem (%s), attempt %d", type(exc).__name__, attempt)
                wait = delay
            if attempt == policy.max_attempts:
                break
            async with self._waiting():
                await asyncio.sleep(min(wait, policy.max_delay_s))
            delay = min(delay * 2, policy.max_delay_s)
        raise SlackUnavailable(method)
