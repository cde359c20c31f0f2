"""`python -m store rotate-keys | generate-key | migrate` as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from store import Store
from store.crypto import Owner
from store.settings import load_settings
from tests.conftest import PROJECT_ROOT


def _cli(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in the test's own empty `folder`, so a developer's `.env` in the project
    folder is never read; the project is found through PYTHONPATH instead."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SERVER_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "store", *args],
        cwd=folder,
        env={**clean, "PYTHONPATH": str(PROJECT_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_generate_key_prints_a_fernet_key(tmp_path: Path) -> None:
    result = _cli(tmp_path, "generate-key")
    assert result.returncode == 0
    Fernet(result.stdout.strip().encode())


def test_rotate_keys_command_then_drop_the_old_key(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    async def seed() -> None:
        store = await Store.open(load_settings(database_url=url, server_secret_key=old))
        await store.credentials.put(Owner("T1", "U1", "openrouter"), "sk-cli-secret", actor_id="U1")
        await store.close()

    asyncio.run(seed())
    result = _cli(tmp_path, "rotate-keys", DATABASE_URL=url, SERVER_SECRET_KEY=f"{new},{old}")
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 1 credential(s)" in result.stdout
    assert "sk-cli-secret" not in result.stdout + result.stderr

    async def read() -> str | None:
        store = await Store.open(load_settings(database_url=url, server_secret_key=new))
        try:
            return await store.credentials.reveal(Owner("T1", "U1", "openrouter"), actor_id="t")
        finally:
            await store.close()

    assert asyncio.run(read()) == "sk-cli-secret"


def test_help_says_what_each_command_does(tmp_path: Path) -> None:
    result = _cli(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    listed = " ".join(result.stdout.split())
    assert "generate-key print a new Fernet key" in listed, result.stdout
    assert "rotate-keys re-encrypt every stored credential" in listed
    assert "migrate bring the database schema to the newest revision" in listed
    assert not (tmp_path / "data").exists()  # help touches no database


def test_bad_key_is_one_clear_line(tmp_path: Path) -> None:
    result = _cli(
        tmp_path,
        "migrate",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/x.db",
        SERVER_SECRET_KEY="nope",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: SERVER_SECRET_KEY entry 1 is not a valid Fernet key "
        "(32 url-safe base64-encoded bytes)"
    ]
