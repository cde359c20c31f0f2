"""A PostgreSQL database of its own for a scenario that needs several replicas: made on the
server the tests use (`TEST_POSTGRES_URL`), dropped after."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


class NoPostgres(Exception):
    """No PostgreSQL server answers: the scenario is reported as not measured."""


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The URL (SQLAlchemy form) of a new, empty database, dropped when the block ends."""
    admin_url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    try:
        admin = await asyncpg.connect(_dsn(admin_url), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise NoPostgres(f"{type(exc).__name__}: {exc}") from exc
    name = f"autogen_slack_bench_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
