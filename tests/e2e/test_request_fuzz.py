"""Whatever arrives at /slack/events, nothing malformed gets a 5xx or does anything.

The whole app runs in HTTP mode (the Slack emulator and the fake LLM behind it) on an event
loop of its own thread; hypothesis sends it raw bytes over real sockets: any header value,
any body, payloads of every shape with parts missing or of the wrong JSON type, signed as
Slack signs them or not, and broken HTTP framing. Every answer must be a 4xx (or the empty
200 Slack expects for a request the app declines), with no Slack call, no LLM call, no
database row and no error or traceback in the log.

Runs are derandomised (the same examples every time, so CI cannot turn red at random);
`HYPOTHESIS_PROFILE=explore` draws new ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from store import Store
from tests.e2e.stack import SIGNING_SECRET, Stack, running_stack
from tests.fakes.slack_signing import block_actions, sign, slash_command, view_submission

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "explore",
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
TABLES = (
    "runs",
    "run_events",
    "outbox",
    "outbox_messages",
    "run_feedback",
    "credentials",
    "credential_requests",
    "offered_actions",
    "audit_log",
)
FORM = "application/x-www-form-urlencoded"


class ServedApp:
    """The app on its own thread's loop, with what it did counted for the tests."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.stack: Stack | None = None
        self.errors: list[logging.LogRecord] = []
        self.before: tuple[tuple[int, int, int], int] = ((0, 0, 0), 0)
        self.sent = 0
        self.answers: Counter[int | None] = Counter()
        self.at_start = (0, 0, 0)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with running_stack(
            self._folder, Fernet.generate_key().decode(), valid_keys=set()
        ) as stack:
            self.stack = stack
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ServedApp:
        self._thread.start()
        assert self._ready.wait(60), "the app did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    @property
    def port(self) -> int:
        assert self.stack is not None
        return self.stack.settings.port

    def effects(self) -> tuple[int, int, int]:
        """Slack calls, response_url posts and LLM requests so far."""
        assert self.stack is not None
        posts = sum(len(p) for p in self.stack.slack.responses.values())
        return len(self.stack.slack.calls), posts, len(self.stack.llm.requests)

    def rows(self) -> dict[str, int]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(self._count_rows(), self._loop).result(30)

    async def _count_rows(self) -> dict[str, int]:
        assert self.stack is not None
        store = await Store.open(self.stack.settings, run_migrations=False)
        try:
            async with store.engine.connect() as connection:
                return {
                    table: int(await connection.scalar(text(f"SELECT count(*) FROM {table}")))
                    for table in TABLES
                }
        finally:
            await store.close()

    def exchange(self, request: bytes, *, half_close: bool = False) -> int | None:
        self.before = (self.effects(), len(self.errors))
        status = self._exchange(request, half_close=half_close)
        self.answers[status] += 1
        return status

    def _exchange(self, request: bytes, *, half_close: bool) -> int | None:
        """Send raw bytes; the answer's HTTP status, or None when the server closed the
        connection without one. `half_close` ends the sending side (for a request that
        promises more body than it has: the server then sees the end instead of waiting)."""
        self.sent += 1
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(request)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            answer = b""
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        if not answer.startswith(b"HTTP/1."):
            return None
        return int(answer.split(b" ", 2)[1])


class _Errors(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self._into.append(record)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    with ServedApp(tmp_path_factory.mktemp("fuzz")) as app:
        handler = _Errors(app.errors)
        logging.getLogger().addHandler(handler)
        app.at_start = app.effects()  # start-up's own calls (auth.test)
        try:
            yield app
        finally:
            logging.getLogger().removeHandler(handler)


def http(
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    method: bytes = b"POST",
    path: bytes = b"/slack/events",
) -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [b"Content-Length: " + str(len(body)).encode()]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def signed(body: bytes, content_type: bytes = FORM.encode()) -> list[tuple[bytes, bytes]]:
    headers = sign(SIGNING_SECRET, body)
    return [(name.encode(), value.encode()) for name, value in headers.items()] + [
        (b"Content-Type", content_type)
    ]


def expect_nothing_happened(
    served: ServedApp, status: int | None, *, framing: bool = False
) -> None:
    assert status is not None or framing, "no HTTP answer"
    assert status is None or status < 500, f"answered {status}"
    assert status is None or status in (200, 404) or 400 <= status < 500
    effects, errors = served.before
    assert served.effects() == effects, "a Slack or LLM call was made"
    assert served.errors[errors:] == [], [r.getMessage() for r in served.errors[errors:]]


# ---------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------

header_value = st.binary(max_size=120).filter(lambda v: b"\r" not in v and b"\n" not in v)
header_name = st.from_regex(rb"\A[A-Za-z0-9!#$%&'*+.^_`|~-]{1,24}\Z")
slack_header = st.sampled_from(
    [b"X-Slack-Signature", b"X-Slack-Request-Timestamp", b"Content-Type", b"X-Slack-Retry-Num"]
)
mangled_signature = st.one_of(
    header_value,
    st.from_regex(rb"\Av0=[0-9a-f]{64}\Z"),
    st.builds(lambda s: "v0=" + s, st.text(max_size=70)).map(lambda s: s.encode("utf-8")),
)
timestamp = st.one_of(
    header_value,
    st.integers(min_value=-(10**20), max_value=10**20).map(lambda n: str(n).encode()),
    st.just(str(int(time.time())).encode()),
)
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _command() -> dict[str, str]:
    body, _ = slash_command(text="write a haiku", response_url="http://127.0.0.1:9/r")
    return {key: values[0] for key, values in parse_qs(body.decode()).items()}


def _interaction(payload: tuple[bytes, str]) -> dict[str, Any]:
    return json.loads(parse_qs(payload[0].decode())["payload"][0])


COMMAND = _command()
CLICK = _interaction(block_actions(action_id="credential_open", value="q1"))
SUBMIT = _interaction(
    view_submission(
        callback_id="credential_modal",
        private_metadata="q1",
        state_values={"credential_value": {"credential_input": "sk-fuzz-000000000"}},
    )
)
EVENT = {
    "type": "event_callback",
    "team_id": "T1",
    "api_app_id": "AAPP",
    "event_id": "Ev1",
    "event": {"type": "message", "text": "hi", "channel": "C1", "user": "U1", "ts": "1.0"},
}
# Each template with the paths whose removal (required) or retyping (typed) makes it
# malformed; removing an optional part would leave a valid request, which is not the point.
TEMPLATES: list[tuple[str, dict[str, Any], list[tuple[str, ...]], list[tuple[str, ...]]]] = [
    (
        "block_actions",
        CLICK,
        [("user",), ("user", "id"), ("actions",), ("actions", 0, "action_id"), ("trigger_id",)],
        [
            ("type",),
            ("team",),
            ("team", "id"),
            ("channel",),
            ("container",),
            ("message",),
            ("actions", 0, "value"),
            ("actions", 0),
            ("response_url",),
        ],
    ),
    (
        "view_submission",
        SUBMIT,
        [("user",), ("user", "id"), ("view",), ("view", "callback_id")],
        [
            ("type",),
            ("team",),
            ("view", "private_metadata"),
            ("view", "state"),
            ("view", "state", "values"),
            ("view", "state", "values", "credential_value"),
            ("view", "state", "values", "credential_value", "credential_input"),
        ],
    ),
    ("event_callback", EVENT, [("event",), ("event", "type")], [("team_id",), ("event",)]),
]


def _set(document: Any, path: tuple[Any, ...], value: Any, *, delete: bool) -> None:
    for step in path[:-1]:
        document = document[step]
    if delete:
        del document[path[-1]]
    else:
        document[path[-1]] = value


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


@st.composite
def malformed_interaction(draw: st.DrawFn) -> bytes:
    """A real interaction or event with one required part removed, or a part given a JSON
    type it never has, then several more such changes."""
    _name, template, required, typed = draw(st.sampled_from(TEMPLATES))
    document = deepcopy(template)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = [p for p in required + typed if _present(document, p) and _present(template, p)]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        if path in required and draw(st.booleans()):
            _set(document, path, None, delete=True)
            continue
        original = _get(template, path)  # wrong for the template, not for an earlier change
        wrong = json_value.filter(lambda v, o=original, p=path: _wrong_type(v, o, p))
        _set(document, path, draw(wrong), delete=False)
    if document.get("type") == "event_callback":
        return json.dumps(document).encode()
    return urlencode({"payload": json.dumps(document)}).encode()


def _present(document: Any, path: tuple[Any, ...]) -> bool:
    try:
        _get(document, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _wrong_type(value: Any, original: Any, path: tuple[Any, ...]) -> bool:
    if isinstance(original, dict) and path[-1] in ("team", "channel"):
        return value is not None and not isinstance(value, dict)
    if isinstance(original, dict):
        return not isinstance(value, dict)
    if isinstance(original, list):
        return not isinstance(value, list) or (
            value != [] and not all(isinstance(v, dict) for v in value)
        )
    return not isinstance(value, type(original)) or isinstance(value, bool) != isinstance(
        original, bool
    )


def _not_a_slack_id(text: str) -> bool:
    """Slack's ids are an upper-case letter and upper-case letters or digits (U012AB...)."""
    return re.fullmatch(r"[A-Z][A-Z0-9]{0,31}", text) is None


@st.composite
def malformed_command(draw: st.DrawFn) -> bytes:
    """`/autogen <task>` with a required field missing, empty or not an id."""
    fields = dict(COMMAND)
    for key in draw(
        st.lists(
            st.sampled_from(
                ["command", "team_id", "user_id", "channel_id", "response_url", "trigger_id"]
            ),
            min_size=1,
            max_size=3,
            unique=True,
        )
    ):
        choice = draw(st.sampled_from(["drop", "empty", "junk"]))
        if choice == "drop":
            fields.pop(key)
        elif choice == "empty":
            fields[key] = ""
        elif key in ("team_id", "user_id", "channel_id"):
            fields[key] = draw(st.text(min_size=1, max_size=80).filter(_not_a_slack_id))
        elif key == "command":
            fields[key] = draw(st.text(max_size=20).filter(lambda t: not t.startswith("/")))
        else:
            fields[key] = ""
    return urlencode(fields).encode()


# ---------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------

VALID_COMMAND_BODY = urlencode(COMMAND).encode()


@settings(PROFILE, max_examples=500)
@given(
    signature=mangled_signature,
    stamp=timestamp,
    content_type=st.one_of(header_value, st.just(FORM.encode())),
    extra=st.lists(st.tuples(st.one_of(slack_header, header_name), header_value), max_size=6),
)
def test_any_header_values_on_a_real_command(
    served: ServedApp, signature: bytes, stamp: bytes, content_type: bytes, extra: list
) -> None:
    """The body is a real `/autogen <task>`; only Slack's signature can make it run, and a
    forged or mangled one (or a repeated header) never does."""
    headers = [
        (b"X-Slack-Signature", signature),
        (b"X-Slack-Request-Timestamp", stamp),
        (b"Content-Type", content_type),
        *extra,
    ]
    status = served.exchange(http(VALID_COMMAND_BODY, headers))
    expect_nothing_happened(served, status)
    assert status in (400, 401)


@settings(PROFILE, max_examples=500)
@given(
    body=st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.text(max_size=300).map(lambda t: b"payload=" + t.encode("utf-8", "surrogatepass")),
        json_value.map(lambda v: json.dumps(v).encode()),
        json_value.map(lambda v: urlencode({"payload": json.dumps(v)}).encode()),
    ),
    content_type=st.sampled_from(
        [FORM.encode(), b"application/json", b"application/json; charset=utf-8", b"text/plain"]
    ),
    is_signed=st.booleans(),
)
def test_any_body_signed_or_not(
    served: ServedApp, body: bytes, content_type: bytes, is_signed: bool
) -> None:
    headers = signed(body, content_type) if is_signed else [(b"Content-Type", content_type)]
    status = served.exchange(http(body, headers))
    expect_nothing_happened(served, status)


@settings(PROFILE, max_examples=700)
@given(body=st.one_of(malformed_interaction(), malformed_command()))
def test_well_signed_payloads_of_the_wrong_shape(served: ServedApp, body: bytes) -> None:
    content_type = b"application/json" if body.startswith(b"{") else FORM.encode()
    status = served.exchange(http(body, signed(body, content_type)))
    expect_nothing_happened(served, status)
    assert status in (200, 400), status


@settings(PROFILE, max_examples=300)
@given(
    request_line=st.one_of(
        st.binary(max_size=60).filter(lambda v: b"\r" not in v and b"\n" not in v),
        st.tuples(
            st.sampled_from([b"GET", b"PUT", b"DELETE", b"OPTIONS", b"HEAD", b"POST", b"BREW"]),
            st.sampled_from([b"/slack/events", b"/slack/events/", b"/", b"/x", b"/%00", b"//"]),
        ).map(lambda mp: mp[0] + b" " + mp[1] + b" HTTP/1.1"),
    ),
    length=st.one_of(st.none(), st.integers(min_value=-5, max_value=10**7)),
    body=st.binary(max_size=300),
)
def test_broken_framing_methods_and_paths(
    served: ServedApp, request_line: bytes, length: int | None, body: bytes
) -> None:
    lines = [request_line, b"Host: 127.0.0.1", b"Connection: close"]
    if length is not None:
        lines.append(b"Content-Length: " + str(length).encode())
    promised_more = length is not None and length > len(body)
    status = served.exchange(b"\r\n".join(lines) + b"\r\n\r\n" + body, half_close=promised_more)
    expect_nothing_happened(served, status, framing=True)


def test_after_all_of_it_the_database_is_empty_and_the_app_still_works(
    served: ServedApp,
) -> None:
    """Nothing any fuzzed request did left a row, a call or an error, even work a listener
    might have done after its answer; and a real, signed command still starts a run (so the
    properties above were not passing against a dead server)."""
    time.sleep(0.5)  # anything started after an answer has had time to show
    assert served.effects() == served.at_start
    assert served.errors == [], [r.getMessage() for r in served.errors]
    assert served.rows() == dict.fromkeys(TABLES, 0)
    status = served.exchange(http(VALID_COMMAND_BODY, signed(VALID_COMMAND_BODY)))
    assert status == 200
    deadline = time.monotonic() + 10
    while served.rows()["runs"] == 0:
        assert time.monotonic() < deadline, "the real command started no run"
        time.sleep(0.05)
    answers = ", ".join(f"{status}: {n}" for status, n in sorted(served.answers.items(), key=str))
    print(f"fuzz: {served.sent} requests sent; answers {answers}")
