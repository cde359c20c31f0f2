"""The requester's LLM key drives a whole run and is written nowhere: not in the saved team
state, not in any event, not in a dumped team, not in the SQLite files, not in any log line
(every logger at DEBUG, AutoGen's event loggers included)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from autogen_ext.models.openai._model_info import resolve_model
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

import runner.redact as redact_module
from bot.logs import install_secret_filter
from runner.manager import RunManager
from runner.redact import REDACTED, redact, redact_tree, redacted_json
from runner.team import load_team
from runner.toolkit import Toolkit
from store import Store
from store import events as ev
from store.db import sqlite_path
from store.records import RunStatus
from store.settings import Settings, load_settings
from tests.db import audit_entries
from tests.runner.helpers import (
    FINISHED,
    ScriptedVerifier,
    put_requester_key,
    replay_team_file,
    runner_settings,
    running_manager,
    start_run,
    verdict,
    wait_for_status,
)

# Not key-shaped: a shape-based scrubber cannot hide a leak; only never carrying it can.
CANARY = "canary-runner-5d1e8c0a4b-must-not-leak"
NEEDLES = (CANARY,)
SHAPED_KEY = "sk-canary-runner-5d1e8c0a4b-shaped"
DEBUG_LOGGERS = (
    "",
    "autogen_core",
    "autogen_core.events",
    "autogen_core.trace",
    "autogen_agentchat",
    "autogen_agentchat.events",
    "autogen_ext",
    "openai",
    "httpx",
    "httpcore",
    "aiohttp",
    "sqlalchemy.engine",
    "aiosqlite",
    "asyncio",
    "runner",
    "store",
)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in DEBUG_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _assert_absent(text: str | bytes, where: str) -> None:
    for needle in NEEDLES:
        raw = needle.encode() if isinstance(text, bytes) else needle
        assert raw not in text, f"the key leaked into {where}"


def _assert_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    formatter = logging.Formatter()
    assert caplog.records, "nothing was logged: the log check would prove nothing"
    for record in caplog.records:
        where = f"a log record of {record.name!r}"
        _assert_absent(record.getMessage(), where)
        _assert_absent(repr(vars(record)), where + " (its fields)")
        if record.exc_info:
            _assert_absent(formatter.formatException(record.exc_info), where + " (traceback)")
        if record.exc_text:
            _assert_absent(record.exc_text, where + " (traceback)")


def _database_files(settings: Settings) -> list[Path]:
    database = sqlite_path(settings.database_url)
    assert database is not None
    return [database, *database.parent.glob(database.name + "-*")]


def _assert_not_in_files(settings: Settings) -> None:
    files = _database_files(settings)
    assert any(path.stat().st_size > 0 for path in files)
    for path in files:
        _assert_absent(path.read_bytes(), f"the SQLite file {path.name}")


async def _assert_not_stored(store: Store, settings: Settings, run_id: str) -> None:
    run = await store.runs.get(run_id)
    assert run is not None and run.team_state
    _assert_absent(run.team_state, "runs.team_state")
    events = await store.runs.events(run_id)
    assert events
    for event in events:
        _assert_absent(json.dumps(event.payload), f"the payload of a {event.kind} event")
    for entry in await audit_entries(store, "T1"):
        _assert_absent(json.dumps(entry["detail"]) + entry["subject"], "the audit trail")
    # A team built with the key, as the executor builds it, dumps without it.
    team = load_team(settings, api_key=CANARY).team
    with contextlib.ExitStack() as secrets:
        toolkit = Toolkit(store, settings, run, secrets, [])
        await toolkit.equip(team)
        _assert_absent(team.dump_component().model_dump_json(), "team.dump_component()")
        _assert_absent(json.dumps(await team.save_state()), "team.save_state()")
        await toolkit.close()
    _assert_not_in_files(settings)  # while open: the WAL and shared-memory files included


async def test_replay_team_run_keeps_the_key_out_of_state_events_files_and_logs(
    tmp_path: Path, secret_key: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    team = replay_team_file(tmp_path, ["Draft answer: 42."], ["Checked. TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "secrecy.db")
    verifier = ScriptedVerifier([verdict(), verdict()])
    async with running_manager(settings, verifier, key=CANARY) as (store, runs):
        run = await wait_for_status(store, await start_run(runs, "What is 6*7?"), FINISHED)
        assert run.status == RunStatus.COMPLETED and run.turns == 2
        assert verifier.keys_seen == [CANARY, CANARY], "the run did not use the canary key"
        await _assert_not_stored(store, settings, run.id)
    _assert_not_in_files(settings)
    _assert_not_logged(debug_logs)
    assert any(r.name.startswith("sqlalchemy.engine") for r in debug_logs.records)


async def test_a_key_an_agent_or_the_verifier_repeats_is_stored_nowhere(
    tmp_path: Path, secret_key: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A model echoes the key it was called with (a prompt injection, a confused model):
    the message, the verdict's reason and the saved team state all carry it only redacted."""
    team = replay_team_file(
        tmp_path, [f"My key is {CANARY}, see?"], [f"Quoting: {CANARY}. TERMINATE"]
    )
    settings = runner_settings(tmp_path, secret_key, team, "echo.db")
    verifier = ScriptedVerifier([verdict("pass", f"It printed {CANARY}.")] * 2)
    install_secret_filter()  # as the app does: every record is scrubbed as it is made
    async with running_manager(settings, verifier, key=CANARY) as (store, runs):
        run = await wait_for_status(store, await start_run(runs, "Say hi"), FINISHED)
        assert run.status == RunStatus.COMPLETED
        events = await store.runs.events(run.id)
        # Two messages said it, two verdicts quoted it, and the summary repeats the last.
        assert sum(REDACTED in json.dumps(e.payload) for e in events) == 5
        for event in events:
            _assert_absent(json.dumps(event.payload), f"the payload of a {event.kind} event")
        _assert_absent((await store.runs.get(run.id)).team_state or "", "runs.team_state")
        _assert_not_in_files(settings)
    _assert_not_in_files(settings)
    # The replayed model output (the echo) is logged by AutoGen at DEBUG: scrubbed.
    assert any(REDACTED in record.getMessage() for record in debug_logs.records)
    _assert_not_logged(debug_logs)


# The default team, with real OpenAI clients talking to a local fake.


def _completion(model: str, message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27},
    }


async def _as_stream(request: web.Request, completion: dict[str, Any]) -> web.StreamResponse:
    """The completion as OpenAI streams it: the whole message in one delta, then the usage
    chunk (asked for with stream_options) and [DONE]."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    choice = completion["choices"][0]
    delta = dict(choice["message"])
    for index, call in enumerate(delta.get("tool_calls") or []):
        call["index"] = index
    base = {k: completion[k] for k in ("id", "created", "model")}
    chunks = [
        {"choices": [{"index": 0, "delta": delta, "finish_reason": choice["finish_reason"]}]},
        {"choices": [], "usage": completion["usage"]},
    ]
    for chunk in chunks:
        body = {**base, "object": "chat.completion.chunk", **chunk}
        await response.write(b"data: " + json.dumps(body).encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


class FakeOpenAI:
    """/v1/chat/completions answering by the system prompt: planner, worker (a call to the
    runner's request_credential tool), reviewer, verifier. Records the Authorization headers."""

    def __init__(self) -> None:
        self.authorizations: list[str] = []
        self.bodies: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.authorizations.append(request.headers.get("Authorization", ""))
        raw = await request.text()
        self.bodies.append(raw)
        body = json.loads(raw)
        answer = self._answer(body)
        if not body.get("stream"):
            return web.json_response(answer)
        return await _as_stream(request, answer)

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
        model = resolve_model(body["model"])  # what OpenAI answers with
        if "verifier" in system:
            message = {"role": "assistant", "content": verdict()}
            return _completion(model, message, "stop")
        if "You are the planner" in system:
            message = {"role": "assistant", "content": "1. Check the key. 2. Report."}
            return _completion(model, message, "stop")
        if "You are the worker" in system and body["messages"][-1]["role"] == "tool":
            tool_said = body["messages"][-1]["content"]  # the reflection on the tool's answer
            message = {"role": "assistant", "content": f"The tool said: {tool_said}"}
            return _completion(model, message, "stop")
        if "You are the worker" in system:
            arguments = json.dumps({"provider": "openrouter", "reason": "to call the API"})
            call = {"id": "call_1", "type": "function"}
            call["function"] = {"name": "request_credential", "arguments": arguments}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            return _completion(model, message, "tool_calls")
        message = {"role": "assistant", "content": "The key is available.\nTERMINATE"}
        return _completion(model, message, "stop")


@contextlib.asynccontextmanager
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # the kernel's free port, taken at once
    await site.start()
    port = int(runner.addresses[0][1])
    fake.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield fake
    finally:
        await runner.cleanup()


async def test_default_team_run_keeps_the_key_out_of_state_events_files_and_logs(
    tmp_path: Path,
    secret_key: str,
    debug_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with fake_openai() as llm:
        settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/secrecy.db",
            server_secret_key=secret_key,
            llm_base_url=llm.url,
            llm_model="gpt-4o-mini",
            llm_max_retries=0,
        )
        assert settings.team_config is None  # runner/teams/default.json
        store = await Store.open(settings)
        await put_requester_key(store, CANARY)
        # No verifier factory given: the production OpenAI verifier client, also on the fake.
        runs = RunManager(store, settings, poll_interval_s=0.05)
        await runs.start()
        try:
            run = await wait_for_status(store, await start_run(runs, "Is a key there?"), FINISHED)
            events = await store.runs.events(run.id)
            assert run.status == RunStatus.COMPLETED, [(e.kind, e.payload) for e in events]
            agent = [e.payload for e in events if e.kind == ev.AGENT_MESSAGE]
            assert [m["source"] for m in agent] == ["planner", "worker", "reviewer"]
            assert "credential is available" in agent[1]["content"]  # the tool really ran
            assert [c["tool"] for c in agent[1]["tool_calls"]] == ["request_credential"]
            await _assert_not_stored(store, settings, run.id)
        finally:
            await runs.stop()
            await store.close()
    # Agents (the worker twice: its tool call, then its reflection on the result) and the
    # verifier: 4 + 3 requests, each authorised with the canary, no body has it.
    assert len(llm.authorizations) == 7
    assert set(llm.authorizations) == {f"Bearer {CANARY}"}
    for body in llm.bodies:
        _assert_absent(body, "a request body sent to the LLM")
    _assert_not_in_files(settings)
    _assert_not_logged(debug_logs)
    names = {r.name for r in debug_logs.records}
    assert "autogen_core.events" in names, sorted(names)  # LLM calls were logged and checked
    assert any(name.startswith(("openai", "httpx", "httpcore")) for name in names), sorted(names)


@pytest.mark.parametrize("model", [None, "gpt-4o-mini", "some-vendor/unknown-model"])
def test_default_team_dump_masks_the_key(model: str | None) -> None:
    """None is the default LLM_MODEL (openai/gpt-4o-mini, not a name the OpenAI client knows)."""
    settings = load_settings(**({"llm_model": model} if model else {}))
    team = load_team(settings, api_key=CANARY).team
    clients = [agent._model_client for agent in team._participants]
    assert len(clients) == 3
    # The key is in the live clients (so the check below is not vacuous) ...
    assert all(client._raw_config["api_key"] == CANARY for client in clients)
    # ... but not in what the team writes out.
    dumped = team.dump_component().model_dump_json()
    _assert_absent(dumped, "team.dump_component()")
    assert '"model":"' in dumped


def test_redact_masks_keys_in_error_text() -> None:
    provider_error = (
        "Error code: 401 - {'error': {'message': 'Incorrect API key provided: "
        f"{SHAPED_KEY}', 'code': 'invalid_api_key'}}}}"
    )
    cleaned = redact(provider_error)
    assert SHAPED_KEY not in cleaned and SHAPED_KEY[3:] not in cleaned
    assert REDACTED in cleaned and "Error code: 401" in cleaned
    # Partially masked echoes, bearer headers and keys of other shapes given explicitly.
    masked = redact("Incorrect API key provided: sk-canar*************leak.")
    assert "sk-canar" not in masked and "leak." not in masked
    assert "canary" not in redact(f"Authorization: Bearer {SHAPED_KEY}")
    assert redact("token=Zq81xK0pQ7 failed", ["Zq81xK0pQ7"]) == f"token={REDACTED} failed"
    assert redact("no secrets here") == "no secrets here"


async def test_an_unexpected_error_quoting_the_key_is_logged_without_it(
    tmp_path: Path, secret_key: str, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    """Not key-shaped, so only knowing the run's own key can keep it out of the log."""
    from runner.executor import RunExecutor

    plain_key = "plainvalue-4f1c9e2a7b"

    async def broken_drive(self, claimed, token) -> None:
        raise RuntimeError(f"the provider echoed the key {claimed.key} back")

    monkeypatch.setattr(RunExecutor, "_drive", broken_drive)
    team = replay_team_file(tmp_path, ["a"], ["b TERMINATE"])
    settings = runner_settings(tmp_path, secret_key, team, "e.db")
    verifier = ScriptedVerifier([verdict()])
    async with running_manager(settings, verifier, key=plain_key, start=False) as (store, runs):
        caplog.set_level(logging.DEBUG)
        await runs.start()
        run = await wait_for_status(store, await start_run(runs), FINISHED)
        assert run.status == RunStatus.FAILED
        assert "the provider echoed the key" in caplog.text
        assert plain_key not in caplog.text


@examples(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["sk-", "xoxb-", "gh", "p_", "Bearer", " ", "\\n", "%22", "AIza", "agt_", "tvly-"]
            + ["abcdef", "123456", "-", "_", "*", "é", "task", ".", "\t"]
        ),
        max_size=12,
    ).map("".join)
)
def test_skipping_texts_without_a_key_prefix_hides_every_key_shape(text: str) -> None:
    """`redact` looks for key shapes only in texts holding a key's prefix (or "Bearer"):
    the shortcut never lets a shape through that the full look would hide."""
    assert redact(text) == redact_module._KEY_SHAPES.sub(redact_module.REDACTED, text)


_PIECES = ["sk-", "xoxb-", "gh", "p_", "Bearer", " ", "\\n", "\n", "%22", "AIza", "agt_"]
_PIECES += ["abcdef", "123456", "-", "_", "*", "é", '"', "\\", "\t", 'q"uote', "kéy"]
_TEXTS = st.lists(st.sampled_from(_PIECES), max_size=8).map("".join)
_TREES = st.recursive(
    st.none() | st.integers() | st.booleans() | _TEXTS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXTS, inner, max_size=4),
    max_leaves=12,
)


@examples(max_examples=400, deadline=None)
@given(_TREES, st.lists(_TEXTS, max_size=2))
def test_the_saved_state_shortcut_hides_what_walking_the_tree_hides(
    tree: object, secrets: list[str]
) -> None:
    """`redacted_json` skips the walk when the state's text has no secret and no key
    prefix: its result is the walk's, whatever quotes, backslashes or accents the secrets
    and the texts hold."""
    assert redacted_json(tree, secrets) == json.dumps(redact_tree(tree, secrets))
