"""Persistence: runs, events, encrypted credentials, offered actions, audit trail.

Knows nothing of Slack or AutoGen. `Store.open(settings)` migrates the schema to head and
returns repositories that share one engine.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from store.actions import ActionRepository
from store.audit import AuditRepository
from store.base import Listener
from store.credentials import CredentialRepository
from store.crypto import CredentialCipher
from store.db import READ_ONLY, create_engine, migrate
from store.keys import resolve_secret_keys
from store.runs import RunRepository
from store.settings import Settings

log = logging.getLogger(__name__)


class Store:
    def __init__(self, engine: AsyncEngine, cipher: CredentialCipher) -> None:
        self.engine = engine
        self._listeners: list[Listener] = []
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        reads = async_sessionmaker(
            engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        self.runs = RunRepository(sessions, self._notify, reads)
        self.credentials = CredentialRepository(sessions, self._notify, cipher, reads)
        self.actions = ActionRepository(sessions, self._notify, reads)
        self.audit = AuditRepository(sessions, self._notify, reads)

    @classmethod
    async def open(cls, settings: Settings, *, run_migrations: bool = True) -> Store:
        cipher = CredentialCipher(resolve_secret_keys(settings))
        engine = create_engine(settings.database_url)
        if run_migrations:
            await migrate(engine)
        return cls(engine, cipher)

    def subscribe(self, listener: Listener) -> None:
        """Be told (in this process) when events are appended or a run becomes ready."""
        self._listeners.append(listener)

    def _notify(self, topic: str, run_id: str) -> None:
        for listener in self._listeners:
            try:
                listener(topic, run_id)
            except Exception:
                log.exception("store listener failed", extra={"run_id": run_id})

    async def close(self) -> None:
        await self.engine.dispose()


__all__ = ["Store"]
