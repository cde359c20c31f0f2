"""`make bench` cannot rot: a smoke of every scenario (a few requests each) runs as the
bench runs, against the real app process, and writes every figure with its target. The
figures themselves are never asserted: speed is measured, not tested."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.__main__ import SCENARIOS
from tests.conftest import PROJECT_ROOT


def test_every_scenario_runs_and_reports_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["machine"]["cores"] >= 1
    assert report["versions"]["autogen-agentchat"]
    scenarios = {figure["scenario"].split()[0] for figure in report["figures"]}
    assert scenarios - {"suite"} == {str(n) for n in range(len(SCENARIOS))}, scenarios
    assert report["figures"][-1]["name"] == "time taken"
    targeted = [f for f in report["figures"] if f["target"]]
    assert targeted and all(f["verdict"] in ("met", "MISSED") for f in targeted)
    assert "target" in result.stdout.splitlines()[0]  # the table was printed
