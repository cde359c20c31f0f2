"""OpenAI's wire format as the fake LLM server speaks it.

Builds ``chat.completion`` bodies, streams ``chat.completion.chunk`` server-sent events,
shapes error objects, lists models and counts rough token usage. Nothing here keeps
state: the server passes in ids and timestamps, so answers stay deterministic.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = [
    "CHAT_COMPLETIONS_PATH",
    "CREATED_BASE",
    "MODELS_PATH",
    "Answer",
    "JsonDict",
    "completion_body",
    "error",
    "invalid_key",
    "models_body",
    "prompt_words",
    "stream",
    "usage_for",
    "words",
]

JsonDict = dict[str, Any]

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"

# Timestamps in answers are derived from a counter, not the clock, so two runs of a test
# produce byte-identical responses.
CREATED_BASE = 1_700_000_000
# Split points for streaming: after whitespace that is followed by a visible character,
# so "a b" streams as "a " + "b" and joining the pieces restores the text exactly.
_STREAM_SPLIT = re.compile(r"(?<=\s)(?=\S)")


@dataclass(frozen=True)
class Answer:
    """A scripted reply turned into the pieces of an assistant message."""

    content: str | None
    tool_calls: list[JsonDict] | None
    completion_words: int

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


def error(message: str, kind: str, code: str | None = None, param: str | None = None) -> JsonDict:
    """OpenAI's error object; ``openai`` reads ``message`` and ``code`` from it."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def invalid_key() -> web.Response:
    """The 401 answer for a missing or unknown API key."""
    # Unlike the real API, not even a masked key is echoed: tests check that secrets never
    # appear in anything the app might log, including error messages.
    return web.json_response(
        error("Incorrect API key provided", "invalid_request_error", "invalid_api_key"),
        status=401,
    )


def usage_for(prompt_tokens: int, answer: Answer) -> JsonDict:
    """The ``usage`` object for a completion of ``answer`` to a prompt of that size."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": answer.completion_words,
        "total_tokens": prompt_tokens + answer.completion_words,
    }


def completion_body(
    completion_id: str, created: int, model: str, answer: Answer, usage: JsonDict
) -> JsonDict:
    """A non-streamed ``chat.completion`` carrying ``answer`` as its only choice."""
    message: JsonDict = {
        "role": "assistant",
        "content": answer.content,
        "refusal": None,
        "annotations": [],
    }
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": usage,
    }


def models_body(names: Iterable[str]) -> JsonDict:
    """The ``GET /v1/models`` list for these model names."""
    data = [
        {"id": name, "object": "model", "created": CREATED_BASE, "owned_by": "fake-llm"}
        for name in names
    ]
    return {"object": "list", "data": data}


async def stream(
    request: web.Request,
    completion_id: str,
    created: int,
    model: str,
    answer: Answer,
    usage: JsonDict | None,
    *,
    pace_s: float = 0.0,
    sent: list[tuple[float, str]] | None = None,
) -> web.StreamResponse:
    """Send the answer as server-sent events the way OpenAI chunks it.

    A role chunk, then content (or tool-call argument) pieces, then a chunk carrying only
    ``finish_reason``; with ``include_usage`` every chunk has ``"usage": null`` and a last
    chunk with no choices carries the usage, then ``data: [DONE]``. With ``pace_s`` the
    content pieces come that many seconds apart, each noted in ``sent`` as it goes out.
    """
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)

    def chunk(choices: list[JsonDict], final_usage: JsonDict | None = None) -> bytes:
        body: JsonDict = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = final_usage
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    def delta(content: JsonDict, finish_reason: str | None = None) -> list[JsonDict]:
        return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish_reason}]

    events: list[bytes] = []
    pieces: dict[int, str] = {}  # event index -> the content piece it carries
    if answer.tool_calls:
        call = answer.tool_calls[0]
        function = {"name": call["function"]["name"], "arguments": ""}
        first = {"index": 0, "id": call["id"], "type": "function", "function": function}
        events.append(chunk(delta({"role": "assistant", "content": None, "tool_calls": [first]})))
        for piece in _pieces(call["function"]["arguments"]):
            part = {"index": 0, "function": {"arguments": piece}}
            events.append(chunk(delta({"tool_calls": [part]})))
    else:
        events.append(chunk(delta({"role": "assistant", "content": "", "refusal": None})))
        for piece in _pieces(answer.content or ""):
            pieces[len(events)] = piece
            events.append(chunk(delta({"content": piece})))
    events.append(chunk(delta({}, answer.finish_reason)))
    if usage is not None:
        events.append(chunk([], usage))
    events.append(b"data: [DONE]\n\n")
    try:
        for index, event in enumerate(events):
            if index in pieces and pace_s:
                await asyncio.sleep(pace_s)
            await response.write(event)
            if index in pieces and sent is not None:
                sent.append((time.monotonic(), pieces[index]))
        await response.write_eof()
    except ConnectionResetError:
        pass  # The client stopped reading (e.g. a cancelled run); nothing left to do.
    return response


def _pieces(text: str) -> list[str]:
    return [piece for piece in _STREAM_SPLIT.split(text) if piece]


def words(text: str) -> int:
    """A rough token count for one piece of text: its whitespace-separated words."""
    return len(text.split())


def prompt_words(payload: JsonDict) -> int:
    """A rough token count: words in every message's text and tool calls."""
    total = 0
    for message in payload.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            total += words(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += words(part["text"])
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += words(str(function.get("name", ""))) + words(
                str(function.get("arguments", ""))
            )
    return total
