"""Persistence: runs and their event log, the outbox, encrypted credentials and the
requests for them, offered actions, the audit trail.

Knows nothing of Slack or AutoGen. `Store.open(settings)` migrates the schema to head and
returns repositories that share one engine and one write path (`store.work`).
"""

from __future__ import annotations

import contextlib
import logging

import asyncpg
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from store.actions import ActionRepository
from store.credentials import CredentialRepository
from store.crypto import CredentialCipher
from store.db import READ_ONLY, create_engine, migrate
from store.feedback import FeedbackRepository
from store.key_requests import KeyRequestRepository
from store.keys import resolve_secret_keys
from store.outbox import OutboxRepository
from store.replies import ReplyRepository
from store.runs import RunRepository
from store.settings import ConfigError, Settings
from store.tokens import TokenRepository
from store.wakeups import Listening
from store.work import Database, Listener, RunWork
from store.writers import WriterQueue

log = logging.getLogger(__name__)


class Store:
    def __init__(self, engine: AsyncEngine, cipher: CredentialCipher) -> None:
        self.engine = engine
        self._db = Database(
            async_sessionmaker(engine, expire_on_commit=False),
            async_sessionmaker(
                engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
            ),
        )
        self.runs = RunRepository(self._db)
        self.outbox = OutboxRepository(self._db)
        self.credentials = CredentialRepository(self._db, cipher)
        self.requests = KeyRequestRepository(self._db, self.credentials)
        self.actions = ActionRepository(self._db)
        self.feedback = FeedbackRepository(self._db)
        self.replies = ReplyRepository(self._db)
        self.tokens = TokenRepository(self._db)
        self._db.on_finish.extend(
            [self.requests.close_for_finished_run, self.actions.close_for_finished_run]
        )
        self._db.on_append.append(self.outbox.track)
        if engine.dialect.name == "sqlite":
            self._db.writers = WriterQueue()  # one writer at a time, people first
        self._db.postgres = engine.dialect.name == "postgresql"
        self.listening: Listening | None = None  # PostgreSQL's wake-ups from other replicas

    @classmethod
    async def open(cls, settings: Settings, *, run_migrations: bool = True) -> Store:
        cipher = CredentialCipher(resolve_secret_keys(settings))
        engine = create_engine(settings.database_url)
        if run_migrations:
            try:
                await migrate(engine)
            except (OSError, OperationalError, InterfaceError) as exc:
                await engine.dispose()
                reason = type(getattr(exc, "orig", None) or exc).__name__
                raise ConfigError(
                    f"DATABASE_URL could not be reached ({reason}): check that the database "
                    "server is up and that the URL's host, port, user and database are right."
                ) from None
        store = cls(engine, cipher)
        if engine.dialect.name == "postgresql":
            await store._listen(settings.database_url)
        return store

    async def _listen(self, url: str) -> None:
        """Tell other replicas what this one commits (NOTIFY), and hear theirs (LISTEN)."""
        self._db.tell_others = True
        listening = Listening(url, self._db.origin, self._db.notify)
        try:
            await listening.start()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("no wake-ups from other replicas (%s): polling only", type(exc).__name__)
            return
        self.listening = listening

    def work(self, *, urgent: bool = False) -> contextlib.AbstractAsyncContextManager[RunWork]:
        """A unit of work for writes that span repositories (an action applied with the
        key request it opens); each repository's `*_in(work, ...)` methods join it.
        `urgent`: a person waits on it (see `store.writers`)."""
        return self._db.work(urgent=urgent)

    def subscribe(self, listener: Listener) -> None:
        """Be told (in this process) when events are appended or a run becomes ready."""
        self._db.subscribe(listener)

    async def close(self) -> None:
        if self.listening is not None:
            await self.listening.close()
        await self.engine.dispose()


__all__ = ["Store"]
