"""The bench's table and its JSON: each figure with its target and whether it is met."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

VERSIONED = ("slack-bolt", "autogen-agentchat", "fastapi", "uvicorn", "sqlalchemy", "aiosqlite")


@dataclass(frozen=True)
class Figure:
    scenario: str
    name: str
    value: float
    unit: str
    target: str = ""  # in words, e.g. "<= 50"; empty: shown for reference
    met: bool | None = None  # None: no target

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("met" if self.met else "MISSED")


def at_most(scenario: str, name: str, value: float, unit: str, limit: float) -> Figure:
    return Figure(scenario, name, value, unit, f"<= {limit:g}", value <= limit)


def at_least(scenario: str, name: str, value: float, unit: str, limit: float) -> Figure:
    return Figure(scenario, name, value, unit, f">= {limit:g}", value >= limit)


def shown(scenario: str, name: str, value: float, unit: str) -> Figure:
    return Figure(scenario, name, value, unit)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `fraction` of them at
    or below it (p99 of 100 values is the 99th, of 50 the largest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(figures: list[Figure]) -> str:
    rows = [("scenario", "figure", "value", "target", "")]
    for f in figures:
        rows.append((f.scenario, f.name, f"{f.value:,.1f} {f.unit}", f.target, f.verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def write_json(figures: list[Figure], path: Path, *, smoke: bool) -> None:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    document = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": smoke,
        "machine": {
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "versions": versions,
        "figures": [asdict(f) | {"verdict": f.verdict} for f in figures],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
