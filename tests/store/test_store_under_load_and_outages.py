"""Under load and outages: SQLite's writer queue starves no run's write; on PostgreSQL a
nested unit of work is refused whatever other tasks do, a lost wake-up connection comes
back once and has every listener catch up, a run a claim skipped while locked wakes the
schedulers, and a released hold reaches the other replicas; the shared OpenAI pool frees
its loop with it and keeps no cookie from one person's request for another's."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest

import store.wakeups as wakeups
from runner import openai_pool
from store import Store
from store.models import utcnow
from store.settings import load_settings
from store.work import EVENT, RUN_READY
from store.writers import WriterQueue
from tests.conftest import create_postgres_database, drop_postgres_database

postgres = pytest.mark.postgres


# --- SQLite's writer queue -------------------------------------------------------------


async def test_a_background_write_is_not_starved_by_a_steady_stream_of_urgent_ones() -> None:
    queue = WriterQueue()
    turns: list[str] = []
    stop = asyncio.Event()

    async def person(n: int) -> None:
        while not stop.is_set():
            async with queue.turn(urgent=True):
                turns.append(f"person-{n}")
                await asyncio.sleep(0)

    async def renewal() -> None:
        async with queue.turn(urgent=False):
            turns.append("renewal")

    people = [asyncio.create_task(person(n)) for n in range(2)]
    await asyncio.sleep(0)
    background = asyncio.create_task(renewal())
    while len(turns) < 200 and not background.done():
        await asyncio.sleep(0)
    stop.set()
    await asyncio.gather(*people, background)
    # Some bounded share (or ageing) for background writes: within the next 20 turns.
    assert "renewal" in turns[:20], f"renewal got turn {turns.index('renewal')}"


# --- PostgreSQL: units of work, wake-ups, claims ---------------------------------------


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


async def _open(url: str, secret_key: str) -> Store:
    return await Store.open(load_settings(database_url=url, server_secret_key=secret_key))


async def _new_run(store: Store, **kwargs: object) -> str:
    run, _ = await store.runs.create(
        workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t", **kwargs
    )
    return run.id


async def _listen_backends(url: str) -> int:
    """LISTEN connections open on the test database (asyncpg's last query on them)."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    con = await asyncpg.connect(dsn)
    try:
        return await con.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
    finally:
        await con.close()


async def _terminate_listen_connection(store: Store, url: str) -> None:
    assert store.listening is not None and store.listening._connection is not None
    pid = store.listening._connection.get_server_pid()
    con = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await con.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await con.close()


async def _eventually(check: object, timeout_s: float = 3.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return bool(check())  # type: ignore[operator]


@postgres
async def test_a_nested_unit_of_work_is_refused_even_if_another_task_wrote_meanwhile(
    pg_url: str, secret_key: str
) -> None:
    store = await _open(pg_url, secret_key)
    try:
        entered = asyncio.Event()
        left = asyncio.Event()

        async def other() -> None:
            await entered.wait()
            async with store.work():
                pass
            left.set()

        helper = asyncio.create_task(other())
        async with store.work():
            entered.set()
            await left.wait()
            with pytest.raises(RuntimeError, match="inside another"):
                async with store.work():  # on the same run row this would hang for ever
                    pass
        await helper
    finally:
        await store.close()


@postgres
async def test_a_failed_reconnect_attempt_does_not_start_an_endless_reconnect_cycle(
    pg_url: str, secret_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wakeups, "RECONNECT_S", 0.05)
    store = await _open(pg_url, secret_key)
    real_add_listener = asyncpg.Connection.add_listener
    calls = 0

    async def add_listener(self: asyncpg.Connection, channel: str, callback: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first reconnect: the server goes away just after accepting it
            self.terminate()
            raise asyncpg.exceptions.AdminShutdownError("terminating connection")
        await real_add_listener(self, channel, callback)

    try:
        await _terminate_listen_connection(store, pg_url)
        monkeypatch.setattr(asyncpg.Connection, "add_listener", add_listener)
        await asyncio.sleep(1.0)  # twenty reconnect intervals
        gc.collect()
        await asyncio.sleep(0.2)
        # One failed attempt and one that worked (a third at most, for the race).
        assert calls <= 3, f"{calls} LISTEN connections opened in 1.2 s"
    finally:
        await store.close()


@postgres
async def test_listeners_are_told_to_catch_up_when_the_wake_up_connection_is_back(
    pg_url: str, secret_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wakeups, "RECONNECT_S", 0.3)
    store_a = await _open(pg_url, secret_key)
    store_b = await _open(pg_url, secret_key)
    heard: list[tuple[str, str]] = []
    store_a.subscribe(lambda topic, run_id: heard.append((topic, run_id)))
    try:
        await _terminate_listen_connection(store_a, pg_url)
        await asyncio.sleep(0.05)
        await _new_run(store_b)  # queued while A is deaf
        assert store_a.listening is not None
        assert await _eventually(lambda: not store_a.listening._connection.is_closed())
        await asyncio.sleep(0.2)
        assert any(topic == RUN_READY for topic, _ in heard), heard
    finally:
        await store_a.close()
        await store_b.close()


@postgres
async def test_a_run_skipped_because_it_was_locked_is_claimed_or_wakes_the_scheduler(
    pg_url: str, secret_key: str
) -> None:
    store = await _open(pg_url, secret_key)
    try:
        run_id = await _new_run(store)
        told: list[tuple[str, str]] = []
        store.subscribe(lambda topic, rid: told.append((topic, rid)))
        locked = asyncio.Event()
        release = asyncio.Event()

        async def attach_thread_slowly() -> None:  # as `runs.attach_thread` does, slower
            async with store.work() as work:
                await work.lock(run_id)
                locked.set()
                await release.wait()

        writer = asyncio.create_task(attach_thread_slowly())
        await locked.wait()
        claimed = await store.runs.claim_next(owner="replica-a", lease_s=60)
        release.set()
        await writer
        assert claimed is not None or (RUN_READY, run_id) in told
    finally:
        await store.close()


@postgres
async def test_release_hold_tells_other_replicas_the_runs_events_can_be_shown(
    pg_url: str, secret_key: str
) -> None:
    store_a = await _open(pg_url, secret_key)
    store_b = await _open(pg_url, secret_key)
    try:
        run_id = await _new_run(store_a, hold_until=utcnow() + timedelta(seconds=30))
        assert await store_a.runs.release_hold(run_id, thread_ts="1700000000.000100")
        assert store_b.listening is not None
        assert await _eventually(lambda: store_b.listening.heard[(RUN_READY, run_id)] >= 1)
        await asyncio.sleep(0.2)
        assert store_b.listening.heard[(EVENT, run_id)] >= 1
    finally:
        await store_a.close()
        await store_b.close()


# --- the shared OpenAI HTTP pool --------------------------------------------------------


async def _keep_alive_server(set_cookie: str | None = None) -> tuple[asyncio.Server, list[str]]:
    """A tiny HTTP/1.1 server that keeps connections open; records the Cookie headers."""
    cookies: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = 0
                cookie = ""
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    if name.lower() == "cookie":
                        cookie = value.strip()
                cookies.append(cookie)
                if length:
                    await reader.readexactly(length)
                body = b'{"ok": true}'
                extra = f"Set-Cookie: {set_cookie}\r\n" if set_cookie else ""
                writer.write(
                    (
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        f"{extra}Content-Length: {len(body)}\r\n\r\n"
                    ).encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()  # the client went, or the loop is closing: nothing more to serve

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, cookies


def test_the_shared_pool_does_not_keep_a_closed_event_loop_alive() -> None:
    loop = asyncio.new_event_loop()

    async def use_pool() -> None:
        server, _ = await _keep_alive_server()
        port = server.sockets[0].getsockname()[1]
        pool = openai_pool.shared_http_client()
        assert pool is not None
        response = await pool.get(f"http://127.0.0.1:{port}/v1/models")
        assert response.status_code == 200
        server.close()

    loop.run_until_complete(use_pool())
    loop.close()
    gone = weakref.ref(loop)
    del loop
    gc.collect()
    assert gone() is None


async def test_one_users_model_client_never_sends_cookies_set_for_anothers() -> None:
    server, cookies = await _keep_alive_server(set_cookie="session=alice-affinity; Path=/")
    port = server.sockets[0].getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        alice = openai_pool.PooledOpenAIChatCompletionClient(
            model="gpt-4o", api_key="sk-alice-000000", base_url=base_url
        )
        bob = openai_pool.PooledOpenAIChatCompletionClient(
            model="gpt-4o", api_key="sk-bob-00000000", base_url=base_url
        )
        # The OpenAI SDK's own request path, on each client's key.
        await alice._client.get("/models", cast_to=httpx.Response)
        await bob._client.get("/models", cast_to=httpx.Response)
        assert cookies[1] == "", f"Bob's request carried {cookies[1]!r}"
    finally:
        server.close()
