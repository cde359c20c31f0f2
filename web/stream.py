"""`/ws/{task_id}`: a run's events, in order, as they are written.

Each message is one event of `web.events.public_event` with its sequence number. A client
that reconnects with `?after=<last seq it saw>` gets the rest and nothing twice: the
follower reads the run's event log (the record every replica writes) from that number, so
it works whichever replica runs the run. The socket closes (1000) once the run has finished
and its `finished` event is sent; 1012 when the server stops (reconnect with `after`).
Refusals close with 4401 (no or a revoked token: checked again before each batch of
new events), 4403 (someone else's run), 4404 (no such run) and 4400 (a bad `after`), each with
a reason; 1011 when the server fails (logged; reconnect with `after`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from store import events as ev
from web.access import Refused, holder_of, visible_run
from web.context import services
from web.events import public_event
from web.feed import RunFeed

log = logging.getLogger(__name__)
router = APIRouter()

CLOSE_FINISHED = 1000
CLOSE_FAILED = 1011
CLOSE_RESTARTING = 1012
SEQ = re.compile(r"[0-9]{1,18}")


@router.websocket("/ws/{task_id}")
async def follow_task(websocket: WebSocket, task_id: str) -> None:
    await websocket.accept()
    try:
        await _serve(websocket, task_id)
    except WebSocketDisconnect:
        pass  # the client went away mid-send
    except Exception:
        log.exception("following task %s failed", task_id[:40])
        with contextlib.suppress(Exception):
            await websocket.close(code=CLOSE_FAILED, reason="server error; reconnect with after")


async def _serve(websocket: WebSocket, task_id: str) -> None:
    web = services(websocket)
    try:
        after = _after(websocket.query_params.get("after"))
        holder = await holder_of(web.store, websocket)
        await visible_run(web.store, web.rules, holder, task_id, "follow_task")
    except Refused as refused:
        await websocket.close(code=4000 + refused.status, reason=refused.message[:120])
        return
    listening = asyncio.create_task(_until_closed(websocket))
    try:
        await _follow(websocket, task_id, after, listening)
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening


def _after(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if SEQ.fullmatch(raw) is None:
        raise Refused(400, "'after' must be the sequence number of an event (0 or more).")
    return int(raw)


async def _follow(websocket: WebSocket, task_id: str, after: int, listening: asyncio.Task) -> None:
    web = services(websocket)
    first = True
    with web.feed.watch(task_id) as changed:
        while not listening.done():
            if web.feed.closing.is_set():
                await websocket.close(code=CLOSE_RESTARTING, reason="server restarting")
                return
            events = await web.store.runs.events(task_id, after_seq=after)
            if events and not first:  # the token may have been revoked since: nothing then
                try:
                    await holder_of(web.store, websocket)
                except Refused as refused:
                    await websocket.close(code=4000 + refused.status, reason=refused.message[:120])
                    return
            for event in events:
                await websocket.send_json(public_event(event))
                after = event.seq
            # Finished, and its `finished` event sent (now, or before a reconnect).
            if (events and events[-1].kind == ev.FINISHED) or (first and not events):
                run = await web.store.runs.get(task_id)
                if run is not None and run.status.finished:
                    await websocket.close(code=CLOSE_FINISHED, reason="finished")
                    return
            first = False
            await _next_change(web.feed, changed, listening)


async def _next_change(feed: RunFeed, changed: asyncio.Event, listening: asyncio.Task) -> None:
    waiting = asyncio.ensure_future(feed.wait(changed))
    try:
        await asyncio.wait({waiting, listening}, return_when="FIRST_COMPLETED")
    finally:
        waiting.cancel()


async def _until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it closes: the follower stops then."""
    with contextlib.suppress(WebSocketDisconnect):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
