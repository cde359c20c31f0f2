"""An agent's reply shown in its thread while the model writes it.

The reply goes out as a Slack streaming message (`chat.startStream`, then `chat.appendStream`
with what was written since, paced to stay inside the method's rate tier). Where Slack will
not stream (the method refused, the workspace without the feature, the stream expired after
minutes without an append: `message_not_in_streaming_state`), the same text goes into one
posted message that `chat.update` rewrites at a bounded rate instead.

The message's `ts` is recorded in the outbox before anything else is shown (`LiveMessage`),
so the recorded reply, when its event is delivered, replaces the live message's content with
the validated message the outbox would have posted (`RunDelivery` does that), and a live
message whose reply never came (a crash, a cancel) is removed, never left half-written.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from bot.slack_calls import ClaimLost, SlackCaller, SlackRefused, SlackUnavailable
from bot.ui.text import escape, inert_broadcasts
from runner.drafts import Draft
from store import Store
from store.outbox import LiveMessage
from store.records import Run

log = logging.getLogger(__name__)

APPEND_EVERY_S = 0.75  # one append per stream this often at most (Tier 4: 100 a minute)
APPEND_BACKOFF_S = 2.0  # after a 429 or 5xx on an append: the stream stays, the text waits
UPDATE_EVERY_S = 2.0  # the fallback rewrites its message at most this often
LIVE_TEXT_LIMIT = 3_500  # past this the live text stops growing; the final reply has it all

# Errors that say this workspace (or token) cannot stream at all: stop trying for a while.
NO_STREAMING = frozenset(
    {
        "unknown_method",
        "method_not_supported_for_channel_type",
        "not_allowed_token_type",
        "missing_scope",
        "feature_not_enabled",
        "team_not_allowed",
    }
)
NO_STREAMING_RETRY_S = 600.0
_WORD_AFTER_AT = re.compile(r"(?<![\w.])@\w*\Z")


class CallBudget:
    """Calls of one Web API method this process may make per minute (a sliding window),
    shared by every run's live reply, so many replies at once stay inside the rate tier."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._made: deque[float] = deque()

    def take(self) -> bool:
        now = time.monotonic()
        while self._made and now - self._made[0] >= 60.0:
            self._made.popleft()
        if len(self._made) >= self._per_minute:
            return False
        self._made.append(now)
        return True


class LiveBudgets:
    """The process-wide budgets (Slack's tiers less some room for retries and other calls):
    `chat.startStream` Tier 2, `chat.appendStream` Tier 4, `chat.update` Tier 3 (shared with
    verdicts and status updates, so live rewrites get only part of it)."""

    def __init__(self) -> None:
        self.start = CallBudget(16)
        self.append = CallBudget(80)
        self.update = CallBudget(30)
        self.streaming_refused_until = 0.0

    @property
    def may_stream(self) -> bool:
        return time.monotonic() >= self.streaming_refused_until


def live_text(draft: Draft, *, markdown: bool) -> str:
    """The reply so far as shown live: who speaks, then the text (escaped, as the final
    message is), cut at `LIVE_TEXT_LIMIT`."""
    name = escape(draft.source)
    header = f"**{name}** · turn {draft.turn}" if markdown else f"*{name}* · turn {draft.turn}"
    # A trailing "@…" may still become "@channel": held back until the word ends, so the
    # text shown stays a prefix of what comes next (the stream is never stopped for it).
    text = _WORD_AFTER_AT.sub("", draft.text)
    return f"{header}\n{_shown_part(inert_broadcasts(text))}"


def _shown_part(text: str) -> str:
    """`text` escaped, at most `LIVE_TEXT_LIMIT` characters of it once escaped (markup
    escapes to several), cut between characters, never inside an escaped one."""
    shown: list[str] = []
    size = 0
    for char in text:
        piece = escape(char)
        if size + len(piece) > LIVE_TEXT_LIMIT:
            return "".join(shown) + " …"  # as cut: still a prefix of a later text
        shown.append(piece)
        size += len(piece)
    return "".join(shown)


class LiveReply:
    """One pass's view of a run's live message: shows a draft, paced, and says when the next
    call may go out. `ClaimLost` propagates; Slack's refusals fall back or give up quietly
    (the finished reply is posted either way)."""

    def __init__(
        self,
        store: Store,
        slack: SlackCaller,
        quick: SlackCaller,
        run: Run,
        *,
        owner: str,
        live: LiveMessage | None,
        budgets: LiveBudgets,
        as_author: Callable[[dict[str, str] | None], dict[str, str]],
    ) -> None:
        self._store = store
        self._slack = slack  # for what must happen: stopping, removing
        self._quick = quick  # for what may be skipped: few retries, no long waits
        self.run = run
        self._owner = owner
        self._budgets = budgets
        self._as_author = as_author  # username / icon, when the app may post as the agent
        self.message = live
        self._shown: str | None = None  # the text the live message shows, when known
        self._draft_version = 0
        self._next_call_at = 0.0
        self._given_up = False
        self.appends = 0

    @property
    def wait_s(self) -> float:
        """How long before the next call may go out."""
        return max(0.0, self._next_call_at - time.monotonic())

    async def show(self, draft: Draft) -> None:
        """Bring the live message up to `draft`, if pacing allows now."""
        if self._given_up or draft.version == self._draft_version or self.wait_s > 0:
            return
        if self.message is not None and self.message.source != draft.source:
            await self.remove()  # another agent's (a crash's leftover): not this reply's
        if self.message is None:
            await self._open(draft)
        elif self.message.streaming and self._shown is not None:
            await self._append(draft)
        else:
            await self._rewrite(draft)

    async def _open(self, draft: Draft) -> None:
        if self._budgets.may_stream and self._budgets.start.take():
            text = live_text(draft, markdown=True)
            try:
                response = await self._quick.call(
                    "chat_startStream",
                    channel=self.run.channel_id,
                    thread_ts=self.run.thread_ts,
                    markdown_text=text,
                    recipient_user_id=self.run.requester_id,
                    recipient_team_id=self.run.workspace_id,
                    **self._as_author(draft.identity),
                )
            except SlackRefused as exc:
                if str(exc) in NO_STREAMING:
                    self._budgets.streaming_refused_until = time.monotonic() + NO_STREAMING_RETRY_S
                log.info("streaming refused (%s); updating instead", exc)
            except SlackUnavailable:
                log.info("streaming unavailable; updating instead")
            else:
                if await self._opened(response, draft, text, streaming=True):
                    return
        text = live_text(draft, markdown=False)
        try:
            response = await self._quick.call(
                "chat_postMessage",
                channel=self.run.channel_id,
                thread_ts=self.run.thread_ts,
                text=text,
                unfurl_links=False,
                unfurl_media=False,
                **self._as_author(draft.identity),
            )
        except (SlackRefused, SlackUnavailable) as exc:
            log.info("live reply not shown (%s)", type(exc).__name__)
            self._given_up = True
            return
        await self._opened(response, draft, text, streaming=False)

    async def _opened(
        self, response: dict[str, Any], draft: Draft, text: str, *, streaming: bool
    ) -> bool:
        ts = str(response.get("ts") or "")
        if not ts:
            return False
        message = LiveMessage(ts, draft.source, streaming)
        try:
            recorded = await self._store.outbox.live(
                self.run.id, owner=self._owner, message=message
            )
        except BaseException:  # a database error: nothing may stay that nobody knows of
            await self._discard(message)
            raise
        if not recorded:
            await self._discard(message)
            raise ClaimLost(self.run.id)
        self.message = message
        self._shown, self._draft_version = text, draft.version
        self._next_call_at = time.monotonic() + (APPEND_EVERY_S if streaming else UPDATE_EVERY_S)
        return True

    async def _discard(self, message: LiveMessage) -> None:
        """Take back a message this pass posted but could not record (the claim went to
        another replica meanwhile), so no stream is left that nobody knows of."""
        with contextlib.suppress(SlackRefused, SlackUnavailable):
            if message.streaming:
                await self._slack.call(
                    "chat_stopStream", claimed=False, channel=self.run.channel_id, ts=message.ref
                )
            await self._slack.call(
                "chat_delete", claimed=False, channel=self.run.channel_id, ts=message.ref
            )

    async def _append(self, draft: Draft) -> None:
        assert self.message is not None and self._shown is not None
        text = live_text(draft, markdown=True)
        if not text.startswith(self._shown):  # the agent's next model call: text replaced
            await self._rewrite(draft)
            return
        added = text[len(self._shown) :]
        if not added:
            self._draft_version = draft.version  # e.g. past LIVE_TEXT_LIMIT
            return
        if not self._budgets.append.take():
            self._next_call_at = time.monotonic() + APPEND_EVERY_S / 2
            return
        try:
            await self._quick.call(
                "chat_appendStream",
                channel=self.run.channel_id,
                ts=self.message.ref,
                markdown_text=added,
            )
        except SlackUnavailable:  # rate-limited or down for now: the next append catches up
            self._next_call_at = time.monotonic() + APPEND_BACKOFF_S
            return
        except SlackRefused as exc:  # expired, say: rewrite it whole
            log.info("stream append refused (%s); updating instead", exc)
            await self._rewrite(draft)
            return
        self.appends += 1
        self._shown, self._draft_version = text, draft.version
        self._next_call_at = time.monotonic() + APPEND_EVERY_S

    async def _rewrite(self, draft: Draft) -> None:
        """The fallback: the whole text so far, by `chat.update` (a stream is stopped first,
        since Slack edits no message mid-stream)."""
        assert self.message is not None
        if self.message.streaming:
            await self._stop_stream()
        if not self._budgets.update.take():
            self._next_call_at = time.monotonic() + UPDATE_EVERY_S / 2
            return
        text = live_text(draft, markdown=False)
        try:
            await self._quick.call(
                "chat_update", channel=self.run.channel_id, ts=self.message.ref, text=text
            )
        except SlackRefused as exc:
            log.info("live reply not updated (%s)", exc)
            if str(exc) == "message_not_found":  # deleted by someone: the reply is posted
                await self._record(None)
            # Otherwise the message stays this reply's: the finished one replaces it.
            self._given_up = True
            return
        except SlackUnavailable:
            self._next_call_at = time.monotonic() + UPDATE_EVERY_S
            return
        self._shown, self._draft_version = text, draft.version
        self._next_call_at = time.monotonic() + UPDATE_EVERY_S

    async def stop(self) -> str | None:
        """End the stream (if it still is one) so the finished reply can replace its content;
        the live message's ts."""
        if self.message is None:
            return None
        if self.message.streaming:
            await self._stop_stream()
        return self.message.ref

    async def remove(self) -> None:
        """The reply this message was showing never came: take it out of the thread."""
        if self.message is None:
            return
        ref = self.message.ref
        if self.message.streaming:
            await self._stop_stream()
        with contextlib.suppress(SlackRefused):  # already gone
            await self._slack.call("chat_delete", channel=self.run.channel_id, ts=ref)
        await self._record(None)
        self._shown = None

    async def _stop_stream(self) -> None:
        assert self.message is not None
        try:
            await self._slack.call(
                "chat_stopStream", channel=self.run.channel_id, ts=self.message.ref
            )
        except SlackRefused as exc:  # expired meanwhile: it is a plain message already
            log.info("stream already stopped (%s)", exc)
        await self._record(LiveMessage(self.message.ref, self.message.source, streaming=False))

    async def _record(self, message: LiveMessage | None) -> None:
        self.message = message
        if not await self._store.outbox.live(self.run.id, owner=self._owner, message=message):
            raise ClaimLost(self.run.id)
