"""`python -m bench [--smoke] [--only NAME,...] [--out PATH]`: run the scenarios, print the
table, write the figures (default `bench/results/latest.json`; a smoke run or a part of the
suite writes only where `--out` says)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import ack, delivery, failover, inprocess, pipeline, startup, waiting
from bench.report import Figure, at_most, shown, table, write_json

Scenario = Callable[..., Awaitable[list[Figure]]]
SCENARIOS: dict[str, Scenario] = {
    "inprocess": inprocess.run,
    "ack": ack.run,
    "pipeline": pipeline.run,
    "waiting": waiting.run,
    "delivery": delivery.run,
    "failover": failover.run,
    "startup": startup.run,
}
LATEST = Path(__file__).parent / "results" / "latest.json"


async def measure(names: list[str], *, smoke: bool) -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="autogen-bench-") as raw:
        folder = Path(raw)
        here = Path.cwd()
        os.chdir(folder)  # nothing the app parts write lands in the project
        try:
            for name in names:
                print(f"... {name}", file=sys.stderr, flush=True)
                (folder / name).mkdir()
                began = time.monotonic()
                measured = await SCENARIOS[name](folder / name, smoke=smoke)
                took = time.monotonic() - began
                label = measured[0].scenario if measured else name
                figures += [*measured, shown(label, "time this scenario took", took, "s")]
        finally:
            os.chdir(here)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few requests per scenario")
    parser.add_argument("--only", default="", help=f"comma separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=None, help="where the JSON goes")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}")
    began = time.monotonic()
    figures = asyncio.run(measure(names, smoke=args.smoke))
    took = time.monotonic() - began
    whole = set(names) == set(SCENARIOS) and not args.smoke
    figures.append(
        at_most("suite", "the whole suite's time", took, "s", 600)
        if whole
        else shown("suite", "time taken", took, "s")
    )
    print(table(figures))
    # Only the whole suite replaces the committed figures; a part of it is printed only.
    out = args.out or (None if args.smoke or args.only else LATEST)
    if out is not None:
        write_json(figures, out, smoke=args.smoke)
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
