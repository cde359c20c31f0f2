"""One HTTP connection pool per event loop for every OpenAI-compatible client the runner
builds (each claimed run's agents, each verdict's verifier client).

An OpenAI client makes its own httpx client, and with it a TLS context that loads the CA
bundle: about 20 ms of CPU on the event loop for every client, and a team builds one per
agent at every claim. On the loop that also answers Slack, that cost lands on acks. Shared,
the context is built once and connections to the model endpoint are reused across runs. A
client's `close()` leaves the pool open (others use it); the pool lives as long as its loop.
"""

from __future__ import annotations

import asyncio
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import openai
from autogen_ext.models.openai import OpenAIChatCompletionClient

from runner.openai_messages import send_messages_as_built


class _SharedHttpClient(openai.DefaultAsyncHttpxClient):
    """Shares connections and the TLS context, never state: it keeps no cookie, so what an
    endpoint set on one person's request never goes out with another's."""

    def __init__(self) -> None:
        super().__init__(cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))

    async def aclose(self) -> None:
        """Closing one model client does not close the pool the others use."""


POOL_ATTRIBUTE = "_autogen_slack_http_pool"  # kept on the loop: it lives and dies with it


def shared_http_client() -> _SharedHttpClient | None:
    """The running loop's pool (made on first use); None outside a loop (a client built
    there, by a script or a test, makes its own)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    pool = getattr(loop, POOL_ATTRIBUTE, None)
    if pool is None:
        # On the loop itself, not in a map keyed by it: the pool's connections refer to
        # their loop, so a map's entry would keep a closed loop alive for ever; as a
        # cycle between the two, both go once the loop is dropped.
        pool = _SharedHttpClient()
        setattr(loop, POOL_ATTRIBUTE, pool)
    return pool


class PooledOpenAIChatCompletionClient(OpenAIChatCompletionClient):
    """AutoGen's OpenAI client on the shared pool, its messages sent as built
    (`runner.openai_messages`); configured exactly as AutoGen's (team JSON names AutoGen's
    class: `runner.team` swaps this one in when it loads a team)."""

    component_provider_override = "runner.openai_pool.PooledOpenAIChatCompletionClient"

    def __init__(self, **kwargs: Any) -> None:
        pool = shared_http_client()
        if pool is not None:
            kwargs.setdefault("http_client", pool)
        super().__init__(**kwargs)
        self._raw_config.pop("http_client", None)  # not configuration: never dumped
        send_messages_as_built(self._client)
