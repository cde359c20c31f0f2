"""Which stored credential a run uses for a provider: the requester's own, then the
workspace's. The LLM key and every tool's key are resolved the same way."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from runner.redact import secret_in_use
from store import Store
from store.credentials import WORKSPACE_USER
from store.crypto import CredentialError, Owner
from store.records import Run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredKey:
    """A stored value and whose it was ("user", "workspace"); `value` None when neither
    holds one. `unreadable`: the requester's stored key no longer decrypts."""

    value: str | None
    source: str = ""
    unreadable: bool = False


async def stored_key(store: Store, run: Run, provider: str) -> StoredKey:
    """The requester's key, then the workspace's. A key that no longer decrypts
    (SERVER_SECRET_KEY replaced without rotation) is skipped, not fatal."""
    unreadable = False
    for user_id, source in ((run.requester_id, "user"), (WORKSPACE_USER, "workspace")):
        try:
            value = await store.credentials.reveal(
                Owner(run.workspace_id, user_id, provider), actor_id="runner", run_id=run.id
            )
        except CredentialError as exc:
            log.warning("stored %s key unreadable (%s)", source, exc, extra={"run_id": run.id})
            unreadable = unreadable or source == "user"
            continue
        if value:
            return StoredKey(value, source)
    return StoredKey(None, unreadable=unreadable)


class RunCredentials:
    """The tool credentials of one claim, each read once when a tool first needs it.

    Every value read is registered with `redact` until the claim ends (`secrets`, the
    claim's exit stack), so no log line, event or saved state of the claim can carry it."""

    def __init__(self, store: Store, run: Run, secrets: contextlib.ExitStack) -> None:
        self._store = store
        self._run = run
        self._secrets = secrets
        self._known: dict[str, str | None] = {}

    async def get(self, provider: str) -> str | None:
        if provider not in self._known:
            found = await stored_key(self._store, self._run, provider)
            if found.value is not None:
                self._secrets.enter_context(secret_in_use(found.value))
            self._known[provider] = found.value
        return self._known[provider]

    def forget(self, provider: str) -> None:
        """A tool refused the key: do not use it again in this claim."""
        self._known[provider] = None

    @property
    def values(self) -> list[str]:
        return [value for value in self._known.values() if value]
