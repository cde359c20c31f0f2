"""`make bench`: speed and memory figures, measured (never asserted in tests).

- what a waiting run costs in memory (100 runs parked on a credential request);
- wall time per completed run with a replayed three-turn team and the verifier on;
- event appends per second on SQLite (the outbox write path);
- slash-command ack latency over HTTP against the Slack emulator;
- `POST /start-task` latency, 50 requests at once from a client process of its own;
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
import tempfile
import time
import tracemalloc
from pathlib import Path

import psutil
from cryptography.fernet import Fernet

from store import Store
from store.crypto import Owner
from store.records import RunStatus
from store.settings import load_settings
from tests.db import add_event
from tests.fakes.slack_api import SlackApiEmulator
from tests.runner.helpers import ScriptedVerifier, manager, replay_team_file, verdict

KEY = "sk-bench-key-000000000"


def _rss_mb() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / 1e6


async def _wait_all(store: Store, ids: list[str], statuses: set[RunStatus]) -> None:
    while True:
        runs = [await store.runs.get(run_id) for run_id in ids]
        if all(run is not None and run.status in statuses for run in runs):
            return
        await asyncio.sleep(0.05)


async def bench_waiting_memory(folder: Path, count: int = 100) -> None:
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
    print(
        f"waiting runs: {count} parked on a credential request; run tasks alive: {tasks}; "
        f"Python heap growth {grown / count / 1024:.1f} KiB per waiting run "
        f"(RSS {rss_before:.0f} -> {_rss_mb():.0f} MB)"
    )
    await runs.stop()
    await store.close()


async def bench_completed_runs(folder: Path, count: int = 20) -> None:
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
    print(
        f"completed runs: {count} two-turn runs (verifier on, 4 at a time) in {elapsed:.2f} s "
        f"= {elapsed / count * 1000:.0f} ms per run"
    )
    await runs.stop()
    await store.close()


async def bench_event_appends(folder: Path, count: int = 2000) -> None:
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
    print(f"event appends (SQLite, one transaction each): {count / elapsed:.0f}/s")
    await store.close()


async def bench_ack_latency(folder: Path, count: int = 30) -> None:
    from tests.e2e.stack import running_stack

    async with running_stack(folder, Fernet.generate_key().decode(), valid_keys={KEY}) as stack:
        latencies = []
        for _ in range(count):
            status, _, elapsed = await stack.command("help")
            assert status == 200
            latencies.append(elapsed * 1000)
        starts = []
        for i in range(10):
            _, _, elapsed = await stack.command(f"task number {i}")
            starts.append(elapsed * 1000)
        # The runs' roots are posted after the ack: let them out before Slack goes away.
        await stack.slack.wait_for(lambda s: len(s.channel_messages("C1")) == 10, timeout=30)
    print(
        f"ack latency over HTTP: /autogen help median {statistics.median(latencies):.1f} ms, "
        f"max {max(latencies):.1f} ms; /autogen <task> median {statistics.median(starts):.1f} ms, "
        f"max {max(starts):.1f} ms"
    )


async def bench_start_task_latency(folder: Path, concurrency: int = 50, rounds: int = 4) -> None:
    """`POST /start-task` over real HTTP, `concurrency` at once, from a process of its own,
    while the runs it starts work (the fake model answers at once)."""
    import json
    import subprocess
    import sys

    from tests.e2e.stack import verdict
    from tests.web.stack import running_web

    async with running_web(
        folder, Fernet.generate_key().decode(), valid_keys={KEY}, llm_api_key=KEY
    ) as stack:
        stack.llm.default("agent-model", "Done. TERMINATE")
        stack.llm.default("verifier-model", verdict())
        alice = await stack.client("alice")
        load = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.bench_http_load",
            f"{stack.base}/start-task",
            str(alice.token),
            str(concurrency),
            str(rounds),
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parent.parent,
        )
        out, _ = await load.communicate()
        latencies = sorted(json.loads(out))
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(
        f"POST /start-task, {concurrency} at once x {rounds} ({len(latencies)} requests, a "
        f"separate client process): p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms"
    )


async def bench_tool_round_trip(folder: Path, count: int = 200) -> None:
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
    print(
        f"tool call round trip (MCP stdio, {count} calls): through the runner's workbench "
        f"median {through:.2f} ms, the same call direct {direct:.2f} ms "
        f"(runner's own share {through - direct:.2f} ms)"
    )


def _finished_runs(slack: SlackApiEmulator) -> int:
    from tests.e2e.stack import text_of

    roots = slack.channel_messages("C1")
    return sum("Run finished" in text_of(m) for r in roots for m in slack.thread("C1", r["ts"]))


async def bench_streamed_replies(folder: Path, runs: int = 2, words: int = 120) -> None:
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
            shown = next(
                (c for c in starts if first_word.strip() in c.params.get("markdown_text", "")),
                None,
            )
            if shown is not None:
                latencies.append((shown.at - first_at) * 1000)
        appends = [len(m["stream_appends"]) for m in stack.slack.streams()]
    print(
        f"streamed replies: first text visible {statistics.median(latencies):.0f} ms after the "
        f"model's first piece (median of {len(latencies)}, max {max(latencies):.0f} ms); "
        f"appends per reply median {statistics.median(appends):.0f} "
        f"(min {min(appends)}, max {max(appends)}) for {words} words written in {words / 20:g} s"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as raw:
        folder = Path(raw)
        os.chdir(folder)
        await bench_waiting_memory(folder)
        await bench_completed_runs(folder)
        await bench_event_appends(folder)
        await bench_ack_latency(folder)
        await bench_start_task_latency(folder)
        await bench_tool_round_trip(folder)
        await bench_streamed_replies(folder)


if __name__ == "__main__":
    asyncio.run(main())
