"""The web front end's edges: odd input that must stay a 4xx (on PostgreSQL too), errors
that quote nothing sent, bodies bounded before they are read, a revoked token's open
socket, socket failures logged, HEAD on /healthz, the SQLite writer lock refusing re-entry,
and a key given in Slack and through the API at once."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from store import Store
from store.changes import ANY_RUN, RunChange
from store.crypto import Owner
from store.key_requests import FulfilOutcome, KeyWanted
from store.models import utcnow
from store.records import RunStatus
from store.settings import load_settings
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.web.stack import KEY, running_web


async def _close_of(socket: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> int | None:
    """The close code of a socket whose first message should be its close."""
    async with asyncio.timeout(timeout):
        message = await socket.receive()
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
    return socket.close_code


# --- Malformed input stays a 4xx, and a socket that fails says so ------------------------


async def test_a_huge_after_on_get_task_is_a_422_not_a_500(tmp_path: Path, secret_key: str) -> None:
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        stack.script_default_team()
        alice = await stack.client("alice")
        task_id = await alice.start()
        for after in ("9223372036854775808", "9" * 30):
            answer = await alice.call("GET", f"/tasks/{task_id}?after={after}")
            assert answer.status == 422, answer


async def test_a_superscript_digit_after_on_the_socket_is_a_4400(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        stack.script_default_team()
        alice = await stack.client("alice")
        task_id = await alice.start()
        url = alice.ws_url(task_id) + "?after=%C2%B2"  # '²'
        async with alice.session.ws_connect(url, headers=alice.headers) as socket:
            assert await _close_of(socket) == 4400


async def test_a_failing_socket_handler_is_logged(
    tmp_path: Path, secret_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    from store.runs import RunRepository

    caplog.set_level(logging.INFO)
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        stack.script_default_team()
        alice = await stack.client("alice")
        task_id = await alice.start()

        async def broken(self: RunRepository, run_id: str, *, after_seq: int = 0) -> None:
            raise RuntimeError("the database went away")

        with pytest.MonkeyPatch.context() as patched:
            patched.setattr(RunRepository, "events", broken)
            async with alice.follow(task_id) as socket:
                async with asyncio.timeout(10):
                    closing = await socket.receive()
                assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1011), closing
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert f"following task {task_id} failed" in [r.getMessage() for r in failures]


# --- Errors quote nothing that was sent -------------------------------------------------


async def test_an_unknown_provider_is_not_quoted_back(tmp_path: Path, secret_key: str) -> None:
    pasted = "sk-" + "or-v1-" + "0a1b2c3d4e5f6a7b8c9d"  # a key pasted into the wrong field
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        alice = await stack.client("alice")
        answer = await alice.call(
            "POST", "/credentials", {"user_id": "alice", "provider": pasted, "value": pasted}
        )
        assert answer.status == 422
        assert pasted not in answer.text
        team = await alice.call("POST", "/start-task", {"task": "t", "team": pasted[:60]})
        assert team.status == 422
        assert pasted[:60] not in team.text


# --- Request bodies are bounded before they are read -----------------------------------


async def test_an_oversized_body_is_refused_without_reading_it(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.settings.port)
        try:
            writer.write(
                b"POST /start-task HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
                + b'{"task": "'
                + b"a" * 1_000_000
            )
            await writer.drain()
            # A server that refuses the size answers now (413); one that buffers it all
            # waits for the other 9.99 GB.
            async with asyncio.timeout(5):
                status_line = await reader.readline()
            assert status_line.split()[1] == b"413", status_line
        finally:
            writer.close()


# --- A revoked token ends its open WebSocket --------------------------------------------


async def test_a_revoked_token_stops_its_open_socket(tmp_path: Path, secret_key: str) -> None:
    async with running_web(tmp_path, secret_key) as stack:
        stack.script_default_team()
        alice = await stack.client("alice")
        task_id = await alice.start()
        async with alice.follow(task_id) as socket:
            await alice.events_until(socket, "credential_request")
            store = await Store.open(stack.settings, run_migrations=False)
            try:
                assert await store.tokens.revoke(alice.token)
            finally:
                await store.close()
            other = await stack.client("alice")  # the same person, another token
            given = await other.call(
                "POST", "/credentials", {"user_id": "alice", "provider": "openrouter", "value": KEY}
            )
            assert given.status == 201
            async with asyncio.timeout(10):
                message = await socket.receive()
            assert message.type == aiohttp.WSMsgType.CLOSE, message.data
            assert socket.close_code == 4401


# --- /healthz answers HEAD ---------------------------------------------------------------


async def test_healthz_answers_head_as_before(tmp_path: Path, secret_key: str) -> None:
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        anonymous = await stack.client(None)
        answer = await anonymous.call("HEAD", "/healthz")
        assert answer.status == 200


# --- The SQLite writer lock refuses re-entry ---------------------------------------------


async def test_a_nested_unit_of_work_on_sqlite_fails_instead_of_hanging(
    tmp_path: Path, secret_key: str
) -> None:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/nested.db", server_secret_key=secret_key
    )
    store = await Store.open(settings)

    async def nested() -> None:
        async with store.work(), store.work():
            pass

    try:
        with pytest.raises(Exception) as raised:
            await asyncio.wait_for(nested(), timeout=5)
        assert not isinstance(raised.value, TimeoutError), "nested work() hung"
    finally:
        await store.close()


# --- supply() and fulfil() take their locks in one order (PostgreSQL) --------------------


@pytest.mark.postgres
async def test_a_key_given_in_slack_and_through_the_api_at_once_does_not_deadlock(
    secret_key: str,
) -> None:
    url = await create_postgres_database()
    settings = load_settings(database_url=url, server_secret_key=secret_key)
    store = await Store.open(settings)
    try:
        run, _ = await store.runs.create(
            workspace_id="T1", channel_id="C1", requester_id="UREQ", task="t"
        )
        request = await store.requests.request(
            run,
            KeyWanted("openrouter", "LLM key"),
            expires_at=utcnow() + timedelta(hours=1),
            guard=ANY_RUN,
            change=RunChange(status=RunStatus.WAITING_CREDENTIAL),
        )
        assert request is not None
        # Interleave the two deterministically: the API's supply() has written the key
        # row when the modal's fulfil() has locked the run; each then goes on.
        supply_wrote, fulfil_locked = asyncio.Event(), asyncio.Event()
        real_store_in = store.credentials.store_in

        async def store_in(session, owner, secret):  # type: ignore[no-untyped-def]
            if asyncio.current_task().get_name() == "modal":  # type: ignore[union-attr]
                fulfil_locked.set()  # fulfil() calls store_in after work.lock(run)
                return await real_store_in(session, owner, secret)
            await real_store_in(session, owner, secret)
            supply_wrote.set()
            await asyncio.sleep(0.3)  # the modal tries the run's lock meanwhile

        store.credentials.store_in = store_in  # type: ignore[method-assign]
        api = asyncio.create_task(
            store.requests.supply(Owner("T1", "UREQ", "openrouter"), KEY, actor_id="UREQ"),
            name="api",
        )
        await supply_wrote.wait()
        modal = asyncio.create_task(
            store.requests.fulfil(request.id, user_id="UREQ", secret=KEY), name="modal"
        )
        async with asyncio.timeout(30):
            results = await asyncio.gather(api, modal, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, [type(f).__name__ + ": " + str(f)[:200] for f in failures]
        assert results[1].outcome == FulfilOutcome.STORED
    finally:
        await store.close()
        await drop_postgres_database(url)


# --- What PostgreSQL refuses is refused before it (a 4xx, as on SQLite) ----------------


@pytest.mark.postgres
async def test_odd_values_are_4xx_on_postgresql_too(tmp_path: Path, secret_key: str) -> None:
    url = await create_postgres_database()
    try:
        async with running_web(tmp_path, secret_key, llm_api_key=KEY, database_url=url) as stack:
            alice = await stack.client("alice")
            answers = [
                await alice.call("POST", "/start-task", {"task": "a\u0000b"}),
                await alice.call("GET", "/credentials/%00"),
                await alice.call("GET", "/credentials/" + "u" * 200),
                await alice.call("DELETE", "/credentials/alice/%00"),
                await alice.call("DELETE", "/credentials/" + "u" * 200 + "/github"),
            ]
            assert [a.status for a in answers if a.status >= 500] == [], answers
    finally:
        await drop_postgres_database(url)
