"""The fake LLM server's script: which reply, or injected failure, answers each request.

``ReplyScript`` keeps the replies a test scripted per model and picks one for each
request: the model's handler if it returns something other than ``None``, then the next
queued reply, then the model's default, then the server-wide fallback. Function replies
are called until a concrete reply (text, ``ToolCall`` or ``HttpError``) comes out; a
script the server cannot answer with raises ``ScriptError``.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections import deque
from collections.abc import Iterable

from tests.fakes.llm_records import Handler, HttpError, Reply, ToolCall
from tests.fakes.llm_wire import JsonDict

__all__ = ["FALLBACK_REPLY", "ReplyScript", "ScriptError", "check_reply"]

FALLBACK_REPLY = "TERMINATE"

# Guards against a callable reply that keeps returning callables.
_MAX_REPLY_NESTING = 16


class ScriptError(Exception):
    """A test scripted something the server cannot answer with."""


class ReplyScript:
    """Replies scripted per model, safe to change from a test while requests arrive.

    Every access to the queues, defaults and handlers holds ``self._lock``, so scripting
    from a test's thread and choosing on the server's event loop do not race.
    """

    def __init__(self, fallback: Reply = FALLBACK_REPLY) -> None:
        self._fallback = fallback
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self._handlers: dict[str, Handler] = {}

    def queue(self, model: str, replies: Iterable[Reply]) -> None:
        """Queue replies for ``model``; each request for it takes the next one."""
        replies = list(replies)
        for reply in replies:
            check_reply(reply)
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)

    def set_default(self, model: str, reply: Reply) -> None:
        """Answer ``model`` with ``reply`` whenever its queue is empty."""
        check_reply(reply)
        with self._lock:
            self._defaults[model] = reply

    def set_handler(self, model: str, handler: Handler | None) -> None:
        """Ask ``handler`` first for every request to ``model`` (``None`` removes it)."""
        with self._lock:
            if handler is None:
                self._handlers.pop(model, None)
            else:
                self._handlers[model] = handler

    def remaining(self, model: str) -> int:
        """How many queued replies for ``model`` have not been used yet."""
        with self._lock:
            return len(self._queues.get(model, ()))

    @property
    def models(self) -> list[str]:
        """Every model name that has been scripted, given a default or a handler."""
        with self._lock:
            return sorted({*self._queues, *self._defaults, *self._handlers})

    async def reply_for(self, model: str, payload: JsonDict) -> str | ToolCall | HttpError:
        """The concrete reply to a request for ``model`` with this body."""
        return await self._resolve(await self._choose(model, payload), payload)

    async def _choose(self, model: str, payload: JsonDict) -> Reply:
        """Pick the reply for this request: handler, then queue, then defaults."""
        with self._lock:
            handler = self._handlers.get(model)
        if handler is not None:
            produced = handler(copy.deepcopy(payload))
            if inspect.isawaitable(produced):
                produced = await produced
            if produced is not None:
                return produced
        with self._lock:
            queue = self._queues.get(model)
            if queue:
                return queue.popleft()
            return self._defaults.get(model, self._fallback)

    async def _resolve(self, reply: Reply, payload: JsonDict) -> str | ToolCall | HttpError:
        """Call function replies until a concrete reply comes out."""
        for _ in range(_MAX_REPLY_NESTING):
            if isinstance(reply, str | ToolCall | HttpError):
                return reply
            if not callable(reply):
                raise ScriptError(f"unsupported reply {reply!r}")
            produced = reply(copy.deepcopy(payload))
            if inspect.isawaitable(produced):
                produced = await produced
            if produced is None:
                raise ScriptError(f"reply function {reply!r} returned None")
            reply = produced
        raise ScriptError(f"reply functions nested more than {_MAX_REPLY_NESTING} deep")


def check_reply(reply: object) -> None:
    """Fail at scripting time, where the stack trace points at the test's mistake."""
    if not (isinstance(reply, str | ToolCall | HttpError) or callable(reply)):
        raise TypeError(
            f"a reply must be str, ToolCall, HttpError or a callable, not {type(reply).__name__}"
        )
