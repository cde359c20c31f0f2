"""One pass of delivering one run's events to its Slack thread.

A `RunDelivery` is built for each pass while the publisher holds the run's publishing claim.
It reads the run's undelivered events once (never the whole log: posting message N costs
the same as posting message 5) and shows each in order, recording its `ts` in the outbox
before the next one goes out. How an event shows is looked up in `renderings.RENDERINGS`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from bot.live_replies import LiveBudgets, LiveReply
from bot.renderings import RENDERINGS, ROOT_REFRESH_KINDS, Lookup, Rendering, closed_prompt
from bot.slack_calls import ClaimLost, SlackCaller, SlackRefused, SlackUnavailable
from bot.ui import blocks as ui
from store import Store
from store import events as ev
from store.models import utcnow
from store.outbox import Backlog, Shown
from store.records import Run, RunEvent

log = logging.getLogger(__name__)


class RunDelivery:
    def __init__(
        self,
        store: Store,
        slack: SlackCaller,
        backlog: Backlog,
        *,
        owner: str,
        agent_identities: bool = False,
        quick: SlackCaller | None = None,
        budgets: LiveBudgets | None = None,
    ) -> None:
        self._store = store
        self._slack = slack
        self._owner = owner
        self._agent_identities = agent_identities  # the token has chat:write.customize
        self.run: Run = backlog.run
        self.live = LiveReply(
            store,
            slack,
            quick or slack,
            backlog.run,
            owner=owner,
            live=backlog.live,
            budgets=budgets or LiveBudgets(),
            as_author=self._as,
        )
        self._took_live: set[int] = set()  # events shown in the live message
        self.events = backlog.events
        self._parts_done = backlog.parts_done
        self._part_ref = backlog.part_ref
        self._shown: dict[Lookup, Shown] = {}  # messages shown during this pass
        self._root_shown: tuple[str, int] | None = None
        self._root_stale = False

    async def ensure_thread(self) -> bool:
        """Post the root of a run whose front end never did; False while the front end may
        still be posting it. `SlackUnavailable` and `SlackRefused` propagate."""
        run = self.run
        if run.thread_ts is not None:
            return True
        if run.awaiting_front_end(utcnow()):
            return False
        text, blocks = self._root_message()
        response = await self._slack.call(
            "chat_postMessage",
            channel=run.channel_id,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        )
        ts = str(response.get("ts") or "")
        if ts and await self._store.runs.attach_thread(run.id, ts):
            log.warning("posted the root message the front end never did", extra={"run_id": run.id})
        elif ts:
            log.info("the run got its root meanwhile; deleting ours", extra={"run_id": run.id})
            with contextlib.suppress(SlackUnavailable, SlackRefused):  # our own post: no claim
                await self._slack.call("chat_delete", claimed=False, channel=run.channel_id, ts=ts)
        current = await self._store.runs.get(run.id)
        if current is None or current.thread_ts is None:
            return False
        self.run = self.live.run = current
        return True

    async def deliver(self, event: RunEvent) -> None:
        """Show one event and record it. `SlackUnavailable` and `ClaimLost` propagate (the
        event stays undelivered); a refusal is logged and the event recorded as skipped,
        unless it says the channel is gone (propagates too)."""
        rendering = RENDERINGS.get(event.kind)
        if rendering is None:
            log.warning("unknown event kind %s skipped", event.kind, extra={"run_id": self.run.id})
            await self._record(event, None, None, None)
            return
        payload = event.payload
        earlier = await self._earlier(rendering.annotates(payload)) if rendering.annotates else None
        try:
            ref = await self._show(event, rendering, earlier)
        except SlackRefused as exc:
            if exc.channel_gone:
                raise
            log.error(
                "slack refused event %s (%s); skipped",
                event.seq,
                exc,
                extra={"run_id": self.run.id},
            )
            ref = None
        opens = rendering.opens(payload) if rendering.opens else None
        closes = earlier.topic if rendering.answers and earlier is not None else None
        await self._record(event, ref, opens, closes)
        if event.kind in ROOT_REFRESH_KINDS:
            self._root_stale = True

    async def _show(
        self, event: RunEvent, rendering: Rendering, earlier: Shown | None
    ) -> str | None:
        if rendering.is_root:
            return self.run.root_message_ts
        if rendering.silent:
            return None
        if rendering.ends_run:
            # Buttons closed and root final before the summary: if Slack is unavailable,
            # the whole event is retried (updates repeat harmlessly; the summary posts once).
            await self._close_open_prompts()
            await self.refresh_root(strict=True)
        messages = rendering.render(event.payload, earlier)
        if rendering.annotates and earlier is not None:
            await self._update(earlier.ref, *messages[-1])
            return earlier.ref
        author = rendering.author(event.payload) if rendering.author else None
        into = None
        if self.live.message is not None:
            if self._is_live_reply(event):
                into = await self.live.stop()
                self._took_live.add(event.seq)
            else:
                await self.live.remove()  # shown before its reply came: removed, not left
        return await self._post_parts(event, messages, author, into=into)

    def _is_live_reply(self, event: RunEvent) -> bool:
        """The recorded reply the live message has been showing: its agent's message."""
        live = self.live.message
        return (
            live is not None
            and event.kind == ev.AGENT_MESSAGE
            and event.payload.get("source") == live.source
        )

    async def _post_parts(
        self,
        event: RunEvent,
        parts: list[ui.Message],
        author: dict[str, str] | None = None,
        *,
        into: str | None = None,
    ) -> str | None:
        """Post each part (as `author`, when the app may); a long message resumes after the
        last part that went out. With `into` (the live message) the first part replaces
        that message's content instead of being posted."""
        done, ref = (self._parts_done, self._part_ref) if event is self.events[0] else (0, None)
        for number, (text, blocks) in enumerate(parts, start=1):
            if number <= done:
                continue  # posted before a failure on a later part
            if number == 1 and into is not None:
                ref = await self._into_live(into, text, blocks, author)
            else:
                ref = await self._post(text, blocks, author)
            if number < len(parts) and ref:
                recorded = await self._store.outbox.part_delivered(
                    self.run.id,
                    owner=self._owner,
                    ref=ref,
                    parts=number,
                    took_live=event.seq in self._took_live,
                )
                if not recorded:
                    raise ClaimLost(self.run.id)
        return ref

    async def _into_live(
        self, ts: str, text: str, blocks: list[dict[str, Any]], author: dict[str, str] | None
    ) -> str | None:
        try:
            await self._update(ts, text, blocks)
        except SlackRefused as exc:  # deleted by someone meanwhile: posted after all
            if exc.channel_gone:
                raise
            log.info(
                "live message gone (%s); posting the reply", exc, extra={"run_id": self.run.id}
            )
            return await self._post(text, blocks, author)
        return ts

    async def _earlier(self, lookup: Lookup) -> Shown | None:
        if lookup in self._shown:
            return self._shown[lookup]
        where, key = lookup
        if where == "seq":
            return await self._store.outbox.shown(self.run.id, int(key))
        return await self._store.outbox.prompt(self.run.id, str(key))

    async def _record(
        self, event: RunEvent, ref: str | None, opens: str | None, closes: str | None
    ) -> None:
        recorded = await self._store.outbox.delivered(
            self.run.id,
            event.seq,
            owner=self._owner,
            ref=ref,
            opens=opens,
            closes=closes,
            took_live=event.seq in self._took_live,
        )
        if not recorded:  # another replica holds the claim, or recorded this event already
            raise ClaimLost(self.run.id)
        if event.seq in self._took_live:
            self.live.message = None
        if ref is not None:
            shown = Shown(ref, event, opens)
            self._shown[("seq", event.seq)] = shown
            if opens is not None:
                self._shown[("topic", opens)] = shown
        if closes is not None:
            self._shown.pop(("topic", closes), None)

    async def _close_open_prompts(self) -> None:
        """A finished run leaves no live buttons: unanswered key requests and undecided
        offers are rewritten as closed, so nobody clicks into a run that is over."""
        for prompt in await self._store.outbox.open_prompts(self.run.id):
            try:
                await self._update(prompt.ref, *closed_prompt(prompt))
            except SlackRefused as exc:  # e.g. deleted by someone: nothing left to close
                log.warning("could not close a prompt (%s)", exc, extra={"run_id": self.run.id})
            if prompt.topic is not None:
                await self._store.outbox.closed(self.run.id, prompt.topic)

    async def refresh_root(self, *, strict: bool = False) -> None:
        """Show the run's status on its root message. A failure is logged and left to the
        next change, unless `strict` (the final state, which no later change would fix)."""
        root = self.run.root_message_ts
        if not (self._root_stale or strict) or root is None:
            return
        shown = (str(self.run.status), self.run.turns)
        if self._root_shown == shown:
            return
        text, blocks = self._root_message()
        try:
            await self._update(root, text, blocks)
        except SlackUnavailable:
            if strict:
                raise
            log.warning("root not updated (slack unavailable)", extra={"run_id": self.run.id})
            return
        except SlackRefused as exc:
            log.warning("root message not updated (%s)", exc, extra={"run_id": self.run.id})
            return
        self._root_shown, self._root_stale = shown, False

    def _root_message(self) -> ui.Message:
        run = self.run
        return ui.root_message(
            run_id=run.id,
            task=run.task,
            requester_id=run.requester_id,
            status=str(run.status),
            detail=f"{run.turns} turns" if run.turns else None,
            team=run.team_name,
        )

    async def _post(
        self, text: str, blocks: list[dict[str, Any]], author: dict[str, str] | None = None
    ) -> str | None:
        response = await self._slack.call(
            "chat_postMessage",
            channel=self.run.channel_id,
            thread_ts=self.run.thread_ts,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
            **self._as(author),
        )
        return response.get("ts")

    def _as(self, author: dict[str, str] | None) -> dict[str, str]:
        """username / icon for an agent's message: only with chat:write.customize (without
        it the message's header line names the agent)."""
        if not self._agent_identities or not author or not author.get("name"):
            return {}
        icon = {k: author[k] for k in ("icon_url", "icon_emoji") if author.get(k)}
        return {"username": author["name"], **dict(list(icon.items())[:1])}

    async def _update(self, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        await self._slack.call(
            "chat_update", channel=self.run.channel_id, ts=ts, text=text, blocks=blocks
        )
