"""Chat messages go to the model as AutoGen built them, without the OpenAI SDK's request
transform walking each one.

Before every request the SDK transforms its parameters against their type hints, in
Python, on the event loop: each message of the prompt is checked against every member of
a union of six TypedDicts, recursively. A prompt carries the whole conversation, so a
long run's calls each cost more than the last, and in a 300-turn run the transform was
most of the process's CPU. The chat message types declare no alias and no format, so the
transform returns them unchanged: handing them over as `extra_body`, which the SDK merges
into the JSON after the transform, sends the same request without the walk. Anything
that is not plain JSON data (a message given as a model object) takes the SDK's own path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from openai import AsyncOpenAI
from openai.resources.chat.completions import AsyncCompletions


def _plain(value: object) -> bool:
    """JSON data as `json.dumps` sends it: what the transform would return unchanged."""
    if isinstance(value, str | int | float | bool) or value is None:
        return True
    if isinstance(value, dict):  # another Mapping would need the transform to be JSON
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    return False


class MessagesAsBuilt(AsyncCompletions):
    """`chat.completions` with plain messages sent untransformed (see the module)."""

    async def create(  # type: ignore[override]
        self,
        *,
        messages: Iterable[Any],
        extra_body: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> Any:
        messages = list(messages)
        if not _plain(messages) or (extra_body and "messages" in extra_body):
            return await super().create(messages=messages, extra_body=extra_body, **params)
        body = {**(extra_body or {}), "messages": messages}
        return await super().create(messages=[], extra_body=body, **params)


def send_messages_as_built(client: AsyncOpenAI) -> None:
    """Make `client.chat.completions` a `MessagesAsBuilt` (the SDK caches the resource on
    its `chat` object, so setting that cache is how the resource is chosen)."""
    vars(client.chat)["completions"] = MessagesAsBuilt(client)
