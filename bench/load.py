"""The load generator, a process of its own (so the app's event loop serves and this one
measures without taking turns on one core): `rounds` times, `concurrency` requests at once,
each timed from sending to the whole answer read. Prints one JSON object: latencies in ms
and the statuses seen.

    python -m bench.load slash URL SIGNING_SECRET CONCURRENCY ROUNDS [TEXT]
    python -m bench.load start-task URL TOKEN CONCURRENCY ROUNDS [TEXT]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.fakes.slack_signing import sign, slash_command

Request = Callable[[int], tuple[bytes, dict[str, str]]]


def slash_requests(secret: str, text: str) -> Request:
    """Signed `/autogen <text> n` commands, each with its own trigger (as from Slack)."""

    def make(n: int) -> tuple[bytes, dict[str, str]]:
        body, content_type = slash_command(text=f"{text} {n}")
        return body, {"Content-Type": content_type, **sign(secret, body)}

    return make


def start_task_requests(token: str, text: str) -> Request:
    def make(n: int) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"task": f"{text} {n}"}).encode()
        return body, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    return make


async def _one(
    session: aiohttp.ClientSession, url: str, request: tuple[bytes, dict]
) -> tuple[float, int]:
    body, headers = request
    began = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as answer:
        await answer.read()
    return (time.perf_counter() - began) * 1000, answer.status


async def run(url: str, make: Request, concurrency: int, rounds: int) -> dict:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _one(session, url, make(-1))  # a warm-up: connections, first-call caches
        n = 0
        for _ in range(rounds):
            batch = []
            for _ in range(concurrency):
                batch.append(_one(session, url, make(n)))
                n += 1
            for latency, status in await asyncio.gather(*batch):
                latencies.append(latency)
                statuses[status] += 1
    return {"latencies_ms": latencies, "statuses": {str(k): v for k, v in statuses.items()}}


async def generate(
    kind: str, url: str, secret_or_token: str, concurrency: int, rounds: int, text: str
) -> dict:
    """Run the load generator as its own process and return what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        kind,
        url,
        secret_or_token,
        str(concurrency),
        str(rounds),
        text,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({process.returncode})")
    return json.loads(out)


def main(argv: list[str]) -> None:
    kind, url, secret, concurrency, rounds = argv[:5]
    text = argv[5] if len(argv) > 5 else "bench task"
    make = slash_requests(secret, text) if kind == "slash" else start_task_requests(secret, text)
    print(json.dumps(asyncio.run(run(url, make, int(concurrency), int(rounds)))))


if __name__ == "__main__":
    main(sys.argv[1:])
