"""Shared fixtures. Every test starts with a clean environment and an empty working folder,
so a developer's `.env` or shell variables never leak into what is tested."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from store import Store
from store.settings import Settings, load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
_ENV_PREFIXES = (
    "SLACK_",
    "LLM_",
    "VERIFIER_",
    "DATABASE_",
    "SERVER_SECRET",
    "OPENROUTER",
    "TEAM_",
    "MAX_",
    "RUN_",
    "CREDENTIAL_",
    "APPROVERS",
    "AUTO_APPLY",
    "APP_ENV",
    "LOG_",
    "PORT",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(autouse=True)
def isolated_logging() -> Iterator[None]:
    """Each test starts and ends with the same logging set-up: the app installs a
    process-wide scrubbing record factory and pins logger levels, and a secrecy test must
    not pass only because an earlier test left the scrubber in place."""
    factory = logging.getLogRecordFactory()
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    logging.setLogRecordFactory(factory)
    root.handlers[:] = handlers
    root.setLevel(root_level)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


def ci_requires_postgres() -> bool:
    """CI systems set CI to "true", "1", their own name...: anything but empty/0/false."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


def postgres_admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


async def _postgres_reachable(url: str) -> str | None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    try:
        connection = await asyncpg.connect(dsn, timeout=5)
    except Exception as exc:  # any failure means "not reachable"
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


async def create_postgres_database() -> str:
    """A fresh database per test, so tests never see each other's rows."""
    import asyncpg

    admin_url = postgres_admin_url()
    problem = await _postgres_reachable(admin_url)
    if problem is not None:
        message = f"PostgreSQL at {admin_url} is not reachable ({problem})"
        if ci_requires_postgres():
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message + "; set CI=true to make this a failure")
    name = f"autogen_slack_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def drop_postgres_database(url: str) -> None:
    import asyncpg

    admin_url = postgres_admin_url()
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/store.db"
        return
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


@pytest.fixture
def settings(database_url: str, secret_key: str) -> Settings:
    return load_settings(database_url=database_url, server_secret_key=secret_key)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = await Store.open(settings)
    try:
        yield opened
    finally:
        await opened.close()
