"""In-process figures (the app's parts driven from the bench's own process), shown for
reference beside the scenarios against the real app process:

- what a waiting run costs in memory (100 runs parked on a credential request);
- wall time per completed run with a replayed three-turn team and the verifier on;
- event appends per second on SQLite (the outbox write path);
- a tool call's round trip through the runner's workbench (credential, policy, scrubbing,
  ledger) against the tests' MCP server over stdio, beside the same call made directly;
- a streamed reply: from the model's first piece to the first text of it visible in the
  emulator (chat.startStream answered), and the appends each reply took.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
import tracemalloc
from pathlib import Path

import psutil
from cryptography.fernet import Fernet

from bench.report import Figure, median, shown
from store import Store
from store.crypto import Owner
from store.records import RunStatus
from store.settings import load_settings
from tests.db import add_event
from tests.fakes.slack_api import SlackApiEmulator
from tests.runner.helpers import ScriptedVerifier, manager, replay_team_file, verdict

KEY = "sk-bench-key-000000000"
NAME = "0 in-process"


def _rss_mb() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / 1e6


async def _wait_all(store: Store, ids: list[str], statuses: set[RunStatus]) -> None:
    while True:
        runs = [await store.runs.get(run_id) for run_id in ids]
        if all(run is not None and run.status in statuses for run in runs):
            return
        await asyncio.sleep(0.05)


async def bench_waiting_memory(folder: Path, count: int = 100) -> list[Figure]:
    team = replay_team_file(folder, ["a"], ["TERMINATE"])
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{folder}/wait.db",
        server_secret_key=Fernet.generate_key().decode(),
        team_config=str(team),
        max_concurrent_runs=8,
    )
    store = await Store.open(settings)
    runs = manager(store, settings)
    await runs.start()
    gc.collect()
    rss_before = _rss_mb()
    tracemalloc.start()
    baseline = tracemalloc.take_snapshot()
    ids = [
        (
            await runs.start_run(
                workspace_id="T1", channel_id="C1", requester_id=f"U{i}", task=f"task {i}"
            )
        ).run.id
        for i in range(count)
    ]
    await _wait_all(store, ids, {RunStatus.WAITING_CREDENTIAL})
    gc.collect()
    after = tracemalloc.take_snapshot()
    grown = sum(stat.size_diff for stat in after.compare_to(baseline, "filename"))
    tracemalloc.stop()
    tasks = len([t for t in asyncio.all_tasks() if t.get_name().startswith("run-")])
    rss_after = _rss_mb()
    await runs.stop()
    await store.close()
    return [
        shown(NAME, f"run tasks alive with {count} runs waiting", tasks, "tasks"),
        shown(NAME, "Python heap per waiting run", grown / count / 1024, "KiB"),
        shown(NAME, f"RSS growth for {count} waiting runs", rss_after - rss_before, "MB"),
    ]


async def bench_completed_runs(folder: Path, count: int = 20) -> list[Figure]:
    team = replay_team_file(folder, ["Draft.", "Revised."], ["Fine. TERMINATE"])
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{folder}/done.db",
        server_secret_key=Fernet.generate_key().decode(),
        team_config=str(team),
        max_concurrent_runs=4,
    )
    store = await Store.open(settings)
    for i in range(count):
        await store.credentials.put(Owner("T1", f"U{i}", "openrouter"), KEY, actor_id="bench")
    runs = manager(store, settings, ScriptedVerifier([verdict()] * (count * 4)))
    await runs.start()
    started = time.perf_counter()
    ids = [
        (
            await runs.start_run(workspace_id="T1", channel_id="C1", requester_id=f"U{i}", task="t")
        ).run.id
        for i in range(count)
    ]
    await _wait_all(store, ids, {RunStatus.COMPLETED})
    elapsed = time.perf_counter() - started
    await runs.stop()
    await store.close()
    return [shown(NAME, "two-turn run, verifier on, 4 at a time", elapsed / count * 1000, "ms")]


async def bench_event_appends(folder: Path, count: int = 2000) -> list[Figure]:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{folder}/ev.db",
        server_secret_key=Fernet.generate_key().decode(),
    )
    store = await Store.open(settings)
    run, _ = await store.runs.create(workspace_id="T1", channel_id="C1", requester_id="U", task="t")
    started = time.perf_counter()
    for i in range(count):
        await add_event(store, run.id, "info", {"i": i})
    elapsed = time.perf_counter() - started
    await store.close()
    return [shown(NAME, "event appends (SQLite, a transaction each)", count / elapsed, "/s")]
    await store.close()


async def bench_tool_round_trip(folder: Path, count: int = 200) -> list[Figure]:
    import contextlib
    import json

    from autogen_core import CancellationToken
    from autogen_ext.tools.mcp import McpWorkbench, StdioServerParams

    from runner.mcp_servers import read_mcp_config
    from runner.team import load_team
    from runner.toolkit import Toolkit
    from tests.fakes.mcp_process import stdio_server_config
    from tests.runner.tool_stack import tool_team_file

    token = "bench-mcp-token-0000"
    entry = stdio_server_config(folder / "calls.jsonl", folder / "pids.txt")
    (folder / "mcp.json").write_text(json.dumps({"mcpServers": {"fakegit": entry}}))
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{folder}/tools.db",
        server_secret_key=Fernet.generate_key().decode(),
        team_config=str(tool_team_file(folder)),
        mcp_config=str(folder / "mcp.json"),
    )
    store = await Store.open(settings)
    await store.credentials.put(Owner("T1", "U1", "fakegit"), token, actor_id="bench")
    run, _ = await store.runs.create(
        workspace_id="T1", channel_id="C1", requester_id="U1", task="t"
    )
    args = {"repo": "acme/app"}

    async def median_ms(call) -> float:
        for _ in range(10):  # warm-up
            await call()
        timings = []
        for _ in range(count):
            started = time.perf_counter()
            await call()
            timings.append((time.perf_counter() - started) * 1000)
        return statistics.median(timings)

    with contextlib.ExitStack() as secrets:
        toolkit = Toolkit(store, settings, run, secrets, read_mcp_config(settings))
        await toolkit.open()
        loaded = load_team(settings, api_key="bench")
        await toolkit.equip(loaded.team)
        workbench = toolkit.workbenches["worker"]
        through = await median_ms(
            lambda: workbench.call_tool("fakegit__list_issues", args, CancellationToken(), "c")
        )
        await toolkit.close()
        await loaded.close()
    env = {**entry["env"], "FAKE_MCP_TOKEN": token}
    params = StdioServerParams(
        command=entry["command"], args=entry["args"], env=env, cwd=entry["cwd"]
    )
    direct_workbench = McpWorkbench(params)
    direct = await median_ms(lambda: direct_workbench.call_tool("list_issues", args))
    await direct_workbench.stop()
    await store.close()
    return [
        shown(NAME, "MCP tool call through the runner's workbench", through, "ms"),
        shown(NAME, "the same MCP call direct", direct, "ms"),
    ]


def _finished_runs(slack: SlackApiEmulator) -> int:
    from tests.e2e.stack import text_of

    roots = slack.channel_messages("C1")
    return sum("Run finished" in text_of(m) for r in roots for m in slack.thread("C1", r["ts"]))


async def bench_streamed_replies(folder: Path, runs: int = 2, words: int = 120) -> list[Figure]:
    from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL, running_stack
    from tests.e2e.stack import verdict as verdict_json

    async with running_stack(
        folder / "stream",
        Fernet.generate_key().decode(),
        valid_keys={KEY},
        openrouter_api_key=KEY,
        streaming=True,
    ) as stack:
        stack.llm.stream_pace_s = 0.05  # a model writing 20 words a second
        stack.llm.default(VERIFIER_MODEL, verdict_json())
        for number in range(runs):
            replies = [
                " ".join(f"r{number}a{turn}w{word}" for word in range(words))
                + (" TERMINATE" if turn == 2 else "")
                for turn in range(3)
            ]
            stack.llm.script(AGENT_MODEL, replies)
            await stack.command(f"Benchmark run {number}")
            await stack.slack.wait_for(lambda s, done=number: _finished_runs(s) > done, timeout=60)
        latencies = []
        starts = [c for c in stack.slack.calls_to("chat.startStream") if c.ok]
        for pieces in stack.llm.streamed:
            if not pieces:
                continue
            first_at, first_word = pieces[0]
            visible = next(
                (c for c in starts if first_word.strip() in c.params.get("markdown_text", "")),
                None,
            )
            if visible is not None:
                latencies.append((visible.at - first_at) * 1000)
        appends = [len(m["stream_appends"]) for m in stack.slack.streams()]
    return [
        shown(NAME, "streamed reply: model's first piece to text shown", median(latencies), "ms"),
        shown(
            NAME, f"appends per {words}-word reply written in {words / 20:g} s", median(appends), ""
        ),
    ]


async def run(folder: Path, *, smoke: bool) -> list[Figure]:
    """The in-process figures, for reference beside the scenarios' targets."""
    small = smoke
    figures = await bench_waiting_memory(folder, count=5 if small else 100)
    figures += await bench_completed_runs(folder, count=2 if small else 20)
    figures += await bench_event_appends(folder, count=50 if small else 2000)
    figures += await bench_tool_round_trip(folder, count=5 if small else 200)
    figures += await bench_streamed_replies(
        folder, runs=1 if small else 2, words=20 if small else 120
    )
    return figures
