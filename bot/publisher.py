"""Turn persisted run events into Slack messages: in order per thread, at most once each.

The run events table is the outbox. For each run, unposted events are rendered and sent in
sequence order; the Slack `ts` of each is recorded before the next one is sent. A 429 waits
for `Retry-After`; 5xx and connection errors back off; both are bounded, after which the
run's remaining events wait for the next pass (a restart included) rather than being lost
or reordered. Errors Slack will never accept (a deleted channel, say) are logged and skipped
so one bad event cannot block a thread forever.

With several replicas, each runs a publisher; a run's events are posted by whichever holds
the run's publishing claim in the database (renewed before every Slack call, released after
each pass), so no event goes out twice. A long message's parts are recorded one by one, so
a failure between parts resumes after the last part that went out.

A run normally gets its root message from the /autogen listener while it is held. If that
never happens (the process died in between, or Slack kept the post waiting past the hold),
the publisher posts the root itself, so no run works unseen; the first root attached wins
and a late duplicate is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.ui import blocks as ui
from runner import events as ev
from store import Store
from store.models import utcnow
from store.records import Run, RunEvent

# Called with (run id, Slack's error) when Slack refuses to show a run at all.
UnshowableHandler = Callable[[str, str], Awaitable[object]]

log = logging.getLogger(__name__)

ROOT_REFRESH_KINDS = {
    ev.RUN_STARTED,
    ev.CREDENTIAL_REQUEST,
    ev.CREDENTIAL_RECEIVED,
    ev.ACTIONS_OFFERED,
    ev.ACTION_RESULT,
    ev.FINISHED,
    ev.AGENT_MESSAGE,
}


# Errors that mean the run's channel (or thread) cannot be posted to at all any more.
CHANNEL_GONE = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "thread_not_found", "restricted_action"}
)


class SlackUnavailable(Exception):
    """Retries ran out (or Slack asked for a long pause); try again on a later pass."""

    def __init__(self, method: str, retry_after_s: float = 0.0) -> None:
        super().__init__(method)
        self.retry_after_s = retry_after_s


class ClaimLost(Exception):
    """Another replica now posts this run's events; stop before posting anything."""


@dataclass
class _Claim:
    """The publishing claim on one run, held by the task that drains it."""

    run_id: str
    renew: Callable[[], Awaitable[bool]]


# Set in each run's drain task (asyncio copies the context per task), read by `_call`.
_current_claim: contextvars.ContextVar[_Claim | None] = contextvars.ContextVar(
    "publisher_claim", default=None
)


class SlackRefused(Exception):
    """Slack answered with an error that retrying cannot fix."""


def _header(headers: Any, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else str(value)
    return None


class Publisher:
    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        *,
        max_attempts: int = 8,
        max_delay_s: float = 30.0,
        base_delay_s: float = 0.5,
        poll_interval_s: float = 2.0,
        claim_s: float = 90.0,
        owner: str | None = None,
        on_unshowable: UnshowableHandler | None = None,
    ) -> None:
        self._store = store
        self._owner = owner or f"publisher-{uuid.uuid4().hex[:8]}"
        self._claim_s = claim_s
        self._not_before: dict[str, float] = {}
        self._stopping = False
        self._on_unshowable = on_unshowable
        self._client = client
        self._max_attempts = max_attempts
        self._max_delay_s = max_delay_s
        self._base_delay_s = base_delay_s
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}
        self._root_status: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        store.subscribe(self._on_store_change)

    def _on_store_change(self, topic: str, _run_id: str) -> None:
        if topic == "event":
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="slack-publisher")

    async def stop(self, *, grace_s: float = 10.0) -> None:
        """Post what is pending, then stop. The loop finishes the event it is on rather than
        being cancelled between a Slack call and its record (which would post it twice);
        only past `grace_s` is it cancelled."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            await asyncio.wait_for(self.drain(), timeout=grace_s)
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.drain()
            except Exception:
                log.exception("publisher pass failed")
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)

    async def drain(self) -> None:
        """One pass: every run with unposted events, runs in parallel, each in order."""
        run_ids = await self._store.runs.runs_with_unposted_events()
        await asyncio.gather(*(self.publish_run(run_id) for run_id in run_ids))

    async def publish_run(self, run_id: str) -> None:
        if asyncio.get_running_loop().time() < self._not_before.get(run_id, 0.0):
            return  # Slack asked us to wait
        lock = self._locks.setdefault(run_id, asyncio.Lock())
        async with lock:
            if not await self._claim(run_id):
                return  # another replica is posting this run
            # Another replica may have changed the root since this one last did.
            self._root_status.pop(run_id, None)
            token = _current_claim.set(_Claim(run_id, lambda: self._claim(run_id)))
            try:
                await self._publish_pending(run_id)
            except ClaimLost:
                log.info("another replica took over posting", extra={"run_id": run_id})
            finally:
                _current_claim.reset(token)
                await self._store.runs.release_publishing(run_id, owner=self._owner)

    async def _claim(self, run_id: str) -> bool:
        return await self._store.runs.claim_publishing(
            run_id, owner=self._owner, lease_s=self._claim_s
        )

    async def _publish_pending(self, run_id: str) -> None:
        run = await self._store.runs.get(run_id)
        if run is not None and run.thread_ts is None:
            run = await self._adopt(run)
        if run is None or run.thread_ts is None:
            return  # its root message is not posted yet
        for event in await self._store.runs.unposted_events(run_id):
            try:
                ts = await self._publish(run, event)
            except SlackUnavailable as exc:
                if exc.retry_after_s:
                    loop_time = asyncio.get_running_loop().time()
                    self._not_before[run_id] = loop_time + exc.retry_after_s
                log.warning("slack unavailable; will retry", extra={"run_id": run_id})
                return
            except SlackRefused as exc:
                if str(exc) in CHANNEL_GONE:
                    await self._unshowable(run, str(exc))
                    return
                log.error(
                    "slack refused event %s (%s); skipped",
                    event.seq,
                    exc,
                    extra={"run_id": run_id},
                )
                ts = None
            await self._store.runs.mark_posted(event.id, slack_ts=ts)
            if event.kind in ROOT_REFRESH_KINDS:
                await self._refresh_root(run_id)
        if run.status.finished:
            self._locks.pop(run_id, None)
            self._root_status.pop(run_id, None)
            self._not_before.pop(run_id, None)

    async def _unshowable(self, run: Run, error: str) -> None:
        """Slack will show nothing more of this run (channel gone, app removed from it):
        end the run, so nobody's key is spent on work nobody can follow or stop, and stop
        trying to post it."""
        log.error("slack will not show this run (%s); ending it", error, extra={"run_id": run.id})
        if self._on_unshowable is not None:
            await self._on_unshowable(run.id, error)
        await self._store.runs.skip_unposted(run.id)

    async def _adopt(self, run: Run) -> Run | None:
        """Post the root message of a run whose front end never did; None while the front
        end may still be posting it, or when Slack is unavailable or refuses."""
        if run.awaiting_front_end(utcnow()):
            return None
        text, blocks = ui.root_message(
            run_id=run.id, task=run.task, requester_id=run.requester_id, status=str(run.status)
        )
        try:
            response = await self._call(
                "chat_postMessage",
                channel=run.channel_id,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackUnavailable:
            return None
        except SlackRefused as exc:
            await self._unshowable(run, str(exc))
            return None
        ts = str(response.get("ts") or "")
        if ts and await self._store.runs.attach_thread(run.id, ts):
            log.warning("posted the root message the front end never did", extra={"run_id": run.id})
        elif ts:
            log.info("the run got its root meanwhile; deleting ours", extra={"run_id": run.id})
            with contextlib.suppress(SlackUnavailable, SlackRefused):
                await self._call("chat_delete", channel=run.channel_id, ts=ts)
        return await self._store.runs.get(run.id)

    async def _publish(self, run: Run, event: RunEvent) -> str | None:
        payload = event.payload
        kind = event.kind
        if kind == ev.RUN_STARTED:
            return run.thread_ts
        if kind == ev.AGENT_MESSAGE:
            parts = ui.agent_message(
                source=payload["source"], content=payload["content"], turn=payload["turn"]
            )
            ts = event.slack_ts
            for number, (text, blocks) in enumerate(parts, start=1):
                if number <= event.parts_posted:
                    continue  # posted before a failure on a later part
                ts = await self._post(run, text, blocks)
                if number < len(parts) and ts:
                    await self._store.runs.note_part_posted(event.id, slack_ts=ts, parts=number)
            return ts
        if kind == ev.VERIFIER_RESULT:
            return await self._show_verdict(run, payload)
        if kind == ev.CREDENTIAL_REQUEST:
            text, blocks = ui.credential_request(
                user_id=payload["user_id"],
                provider=payload["provider"],
                reason=payload["reason"],
                request_id=payload["request_id"],
                rejected=bool(payload.get("rejected")),
            )
            return await self._post(run, text, blocks)
        if kind == ev.CREDENTIAL_RECEIVED:
            earlier = await self._find(run.id, ev.CREDENTIAL_REQUEST, "request_id", payload)
            text, blocks = ui.credential_received(
                user_id=payload["user_id"], provider=payload["provider"]
            )
            if earlier is not None and earlier.slack_ts:
                await self._update(run, earlier.slack_ts, text, blocks)
                return earlier.slack_ts
            return await self._post(run, text, blocks)
        if kind == ev.ACTIONS_OFFERED:
            text, blocks = ui.actions_offered(reason=payload["reason"], actions=payload["actions"])
            return await self._post(run, text, blocks)
        if kind == ev.ACTION_RESULT:
            earlier = await self._find(run.id, ev.ACTIONS_OFFERED, "offer_id", payload)
            reason = earlier.payload.get("reason", "") if earlier else ""
            text, blocks = ui.action_decided(
                reason=reason,
                label=payload["label"],
                decided_by=payload["decided_by"],
                auto=bool(payload.get("auto")),
            )
            if earlier is not None and earlier.slack_ts:
                await self._update(run, earlier.slack_ts, text, blocks)
                return earlier.slack_ts
            return await self._post(run, text, blocks)
        if kind == ev.INFO:
            return await self._post(run, *ui.info(str(payload.get("text", ""))))
        if kind == ev.ERROR:
            return await self._post(run, *ui.error(str(payload.get("text", ""))))
        if kind == ev.FINISHED:
            # Buttons closed and root final before the summary: if Slack is unavailable,
            # the whole event is retried (updates repeat harmlessly; the summary posts once).
            await self._close_open_prompts(run)
            await self._refresh_root(run.id, strict=True)
            return await self._post(run, *ui.summary(payload))
        log.warning("unknown event kind %s skipped", kind, extra={"run_id": run.id})
        return None

    async def _show_verdict(self, run: Run, payload: dict[str, Any]) -> str | None:
        """Put the verdict on the agent message it judges (its last part)."""
        events = await self._store.runs.events(run.id, after_seq=int(payload["agent_seq"]) - 1)
        agent = next((e for e in events if e.seq == payload["agent_seq"]), None)
        if agent is not None and agent.slack_ts:
            text, blocks = ui.agent_message(
                source=agent.payload["source"],
                content=agent.payload["content"],
                turn=agent.payload["turn"],
                verdict=payload,
            )[-1]
            await self._update(run, agent.slack_ts, text, blocks)
            return agent.slack_ts
        context = ui.verdict_context(payload).to_dict()
        return await self._post(run, str(payload.get("verdict")), [context])

    async def _close_open_prompts(self, run: Run) -> None:
        """A finished run leaves no live buttons: unanswered key requests and undecided
        offers are rewritten as closed, so nobody clicks into a run that is over."""
        events = await self._store.runs.events(run.id)
        answered = {e.payload.get("request_id") for e in events if e.kind == ev.CREDENTIAL_RECEIVED}
        decided = {e.payload.get("offer_id") for e in events if e.kind == ev.ACTION_RESULT}
        for event in events:
            if not event.slack_ts:
                continue
            if event.kind == ev.CREDENTIAL_REQUEST and event.payload["request_id"] not in answered:
                text, blocks = ui.credential_closed(
                    provider=event.payload["provider"], status="the run ended"
                )
            elif event.kind == ev.ACTIONS_OFFERED and event.payload["offer_id"] not in decided:
                text, blocks = ui.actions_closed(reason=event.payload.get("reason", ""))
            else:
                continue
            try:
                await self._update(run, event.slack_ts, text, blocks)
            except SlackRefused as exc:  # e.g. deleted by someone: nothing left to close
                log.warning("could not close a prompt (%s)", exc, extra={"run_id": run.id})

    async def _find(
        self, run_id: str, kind: str, key: str, payload: dict[str, Any]
    ) -> RunEvent | None:
        for event in reversed(await self._store.runs.events(run_id)):
            if event.kind == kind and event.payload.get(key) == payload.get(key):
                return event
        return None

    async def _refresh_root(self, run_id: str, *, strict: bool = False) -> None:
        """Show the run's status on its root message. A failure is logged and left to the
        next change, unless `strict` (the final state, which no later change would fix)."""
        run = await self._store.runs.get(run_id)
        if run is None or run.thread_ts is None:
            return
        detail = f"{run.turns} turns" if run.turns else None
        shown = f"{run.status}:{detail}"
        if self._root_status.get(run_id) == shown:
            return
        text, blocks = ui.root_message(
            run_id=run.id,
            task=run.task,
            requester_id=run.requester_id,
            status=str(run.status),
            detail=detail,
        )
        try:
            await self._update(run, run.thread_ts, text, blocks)
        except SlackUnavailable:
            if strict:
                raise
            log.warning("root message not updated (slack unavailable)", extra={"run_id": run_id})
            return
        except SlackRefused as exc:
            log.warning("root message not updated (%s)", exc, extra={"run_id": run_id})
            return
        self._root_status[run_id] = shown

    async def _post(self, run: Run, text: str, blocks: list[dict[str, Any]]) -> str | None:
        response = await self._call(
            "chat_postMessage",
            channel=run.channel_id,
            thread_ts=run.thread_ts,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        )
        return response.get("ts")

    async def _update(self, run: Run, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        await self._call("chat_update", channel=run.channel_id, ts=ts, text=text, blocks=blocks)

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """One Web API call with bounded retries. Before every attempt the run's publishing
        claim is renewed, so a replica that lost it never posts. A 429 waits `Retry-After`
        in full; a wait longer than `max_delay_s` ends this pass and the run is not retried
        before then."""
        claim = _current_claim.get()
        delay = self._base_delay_s
        for attempt in range(1, self._max_attempts + 1):
            if claim is not None and not await claim.renew():
                raise ClaimLost(claim.run_id)
            try:
                response = await getattr(self._client, method)(**kwargs)
                return dict(response.data) if isinstance(response.data, dict) else {}
            except SlackApiError as exc:
                status = exc.response.status_code
                if status == 429:
                    wait = float(_header(exc.response.headers, "Retry-After") or 1)
                    if wait > self._max_delay_s:
                        raise SlackUnavailable(method, retry_after_s=wait) from None
                elif status >= 500:
                    wait = delay
                else:
                    raise SlackRefused(str(exc.response.get("error", status))) from None
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.info("slack connection problem (%s), attempt %d", type(exc).__name__, attempt)
                wait = delay
            if attempt == self._max_attempts:
                break
            await asyncio.sleep(min(wait, self._max_delay_s))
            delay = min(delay * 2, self._max_delay_s)
        raise SlackUnavailable(method)
