"""Wake-ups across replicas on PostgreSQL: LISTEN/NOTIFY.

Each replica's store tells its own listeners after a commit (a run is ready, a run has new
events); another replica would only learn of it at its next poll. On PostgreSQL every unit
of work that has something to tell also sends a NOTIFY in its transaction (delivered when,
and only if, it commits), and every store LISTENs on one connection of its own, passing
what other replicas send to its listeners as if written here: a key submitted on replica B
wakes the scheduler of replica A at once, and A's publisher and WebSockets hear of events
B wrote. The polls stay as the fallback (a lost connection is reopened, and meanwhile the
polls carry on). SQLite has one process per database file: nothing to tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

CHANNEL = "autogen_wake"
CATCH_UP = "*"  # the run id of a wake-up after an outage: any run may have changed
# What a listener is told (with the run's id), here and through `store.work`.
EVENT = "event"  # the run has new events
RUN_READY = "run_ready"  # the run may be claimed
RECONNECT_S = 5.0
_NOTIFY = text(
    "SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[])) AS payload"
)


def new_origin() -> str:
    """This store's name in its notifications, so it skips its own."""
    return uuid.uuid4().hex[:12]


async def send(session: AsyncSession, origin: str, messages: Iterable[tuple[str, str]]) -> None:
    """NOTIFY (topic, run id) pairs inside the caller's transaction, in one statement."""
    payloads = [f"{origin} {topic} {run_id}" for topic, run_id in messages]
    if payloads:
        await session.execute(_NOTIFY, {"channel": CHANNEL, "payloads": payloads})


class Listening:
    """One LISTEN connection; what other stores send reaches `deliver(topic, run_id)`."""

    def __init__(self, url: str, origin: str, deliver: Callable[[str, str], None]) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._origin = origin
        self._deliver = deliver
        self._connection: asyncpg.Connection | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False
        self.heard: Counter[tuple[str, str]] = Counter()  # (topic, run id) from elsewhere

    async def start(self) -> None:
        connection = await asyncpg.connect(self._dsn)
        try:
            await connection.add_listener(CHANNEL, self._on_notification)
        except BaseException:
            connection.terminate()  # half open: never left for the collector to report
            raise
        connection.add_termination_listener(self._lost)
        self._connection = connection

    def _on_notification(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        origin, _, rest = payload.partition(" ")
        topic, _, run_id = rest.partition(" ")
        if origin == self._origin or not run_id:
            return
        self.heard[(topic, run_id)] += 1
        self._deliver(topic, run_id)

    def _lost(self, connection: object) -> None:
        if self._closed or connection is not self._connection:
            return  # closing, or an old connection: the current one is fine
        if self._reconnecting is not None and not self._reconnecting.done():
            return  # one reconnect loop at a time
        log.warning("lost the wake-up connection to PostgreSQL; polling until it is back")
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while not self._closed:
            await asyncio.sleep(RECONNECT_S)
            try:
                await self.start()
            except (OSError, asyncpg.PostgresError) as exc:
                log.info("wake-up connection not back yet (%s)", type(exc).__name__)
                continue
            log.info("wake-up connection to PostgreSQL is back")
            # What other replicas sent meanwhile is lost: have every listener look again.
            self._deliver(RUN_READY, CATCH_UP)
            self._deliver(EVENT, CATCH_UP)
            return

    async def close(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close(timeout=5)
