"""A `tests.runner.crash_child` process for the crash tests: started, read line by line,
killed with SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from store.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LINE_TIMEOUT_S = 15.0


@dataclass
class Child:
    process: asyncio.subprocess.Process
    log: Path

    async def expect(self, prefix: str, timeout: float = LINE_TIMEOUT_S) -> str:
        """The next stdout line starting with `prefix` (other lines are skipped)."""
        assert self.process.stdout is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                raw = await asyncio.wait_for(self.process.stdout.readline(), max(left, 0.01))
            except TimeoutError:
                raise AssertionError(
                    f"no {prefix!r} line in {timeout} s\n{self.stderr()}"
                ) from None
            if not raw:
                raise AssertionError(f"the child exited before {prefix!r}\n{self.stderr()}")
            line = raw.decode().strip()
            if line.startswith(prefix):
                return line

    async def recovery_passes(self, count: int, *, started_after: float) -> None:
        """Wait until `count` recovery passes that began after `started_after` (a
        `time.time()` value) are done; `crash_child` prints a line after each pass."""
        done = 0
        while done < count:
            _, _, started = (await self.expect("RECOVERY ")).split()
            if float(started) > started_after:
                done += 1

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()  # SIGKILL: no finally blocks, no graceful stop, no release
            await self.process.wait()

    def stderr(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "child stderr (tail):\n" + text[-4000:]


@contextlib.asynccontextmanager
async def child(
    settings: Settings, folder: Path, mode: str, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Child]:
    """Start `crash_child` in `mode` (`extra_env`: more settings, as variables); always
    SIGKILLed on the way out."""
    log = folder / f"child-{mode}-{len(list(folder.glob('child-*.log')))}.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    assert settings.server_secret_key is not None
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.runner.crash_child",
            settings.database_url,
            settings.server_secret_key.get_secret_value(),
            str(settings.team_config),
            mode,
            cwd=folder,  # not the project root: no .env there is read
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        handle = Child(process, log)
        try:
            yield handle
        finally:
            await handle.kill()
