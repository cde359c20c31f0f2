"""What every repository shares: a session factory and after-commit notifications."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

Listener = Callable[[str, str], None]
"""Called after a commit with (topic, run_id); topics are `event` and `run_ready`."""


def new_id() -> str:
    return uuid.uuid4().hex[:16]


class Repository:
    """One session per unit of work; never a session shared by concurrent tasks.
    `_sessions.begin()` for writes; `_reads()` for sessions that only read."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notify: Listener,
        reads: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._sessions = sessions
        self._reads = reads or sessions
        self._notify = notify
