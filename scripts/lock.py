"""`make lock`: resolve pyproject's ranges in a scratch venv and pin both lock files.

requirements.lock gets what the app needs at run time; requirements-dev.lock gets what the
`dev` extra adds on top (it includes the runtime lock with `-r`). Each file keeps the comment
lines it starts with, so the notes written there survive a refresh.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "requirements.lock"
DEV = ROOT / "requirements-dev.lock"


def header(path: Path) -> list[str]:
    """The leading comment lines of a lock file (empty when it does not exist yet)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return list(itertools.takewhile(lambda line: line.startswith("#"), lines))


def freeze(python: Path) -> dict[str, str]:
    """name (lower case) -> pinned line, of everything installed but the project."""
    output = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--exclude-editable", "--all"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pins = {}
    for line in output.splitlines():
        name = line.split("==", 1)[0].strip().lower().replace("_", "-")
        if "==" in line and name not in {"pip", "setuptools", "wheel"}:
            pins[name] = line.strip()
    return pins


def install(python: Path, target: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", target],
        check=True,
        cwd=ROOT,
    )


def by_name(pins: dict[str, str]) -> list[str]:
    return [pins[name] for name in sorted(pins)]


def write(path: Path, head: list[str], lines: list[str]) -> None:
    path.write_text("\n".join([*head, *lines]) + "\n", encoding="utf-8")


def main() -> int:
    runtime_head, dev_head = header(RUNTIME), header(DEV)
    scratch = Path(tempfile.mkdtemp(prefix="autogen-slack-lock-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(scratch)], check=True)
        python = scratch / "bin" / "python"
        install(python, "-e.")
        runtime = freeze(python)
        install(python, "-e.[dev]")
        everything = freeze(python)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    dev_only = {name: pin for name, pin in everything.items() if name not in runtime}
    write(RUNTIME, runtime_head, by_name(runtime))
    write(DEV, dev_head, ["-r requirements.lock", *by_name(dev_only)])
    print(f"lock: {len(runtime)} runtime pins, {len(dev_only)} development pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
