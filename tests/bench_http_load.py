"""A load generator of its own process for `make bench`: `rounds` times, `concurrency` POST
requests at once to one URL with a JSON body and a bearer token; prints each request's
latency in milliseconds (JSON), so the app's event loop serves and the client measures
without sharing a core's turn."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def _one(session: aiohttp.ClientSession, url: str, body: dict, token: str) -> float:
    began = time.perf_counter()
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
        await r.read()
        assert r.status in (200, 201), r.status
    return (time.perf_counter() - began) * 1000


async def main(url: str, token: str, concurrency: int, rounds: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        await _one(session, url, {"task": "warm-up"}, token)
        for round_no in range(rounds):
            batch = [
                _one(session, url, {"task": f"load {round_no}-{i}"}, token)
                for i in range(concurrency)
            ]
            latencies += await asyncio.gather(*batch)
    print(json.dumps(latencies))


if __name__ == "__main__":
    url, token, concurrency, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(main(url, token, concurrency, rounds))
