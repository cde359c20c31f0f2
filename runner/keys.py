"""What a front end may do with credentials: check a typed key, list and delete a person's
own, look up a key request and answer it, or give a key unasked (which answers every request
for it): either wakes the waiting runs on any replica."""

from __future__ import annotations

from enum import StrEnum

from store import Store
from store.crypto import Owner
from store.key_requests import FulfilOutcome, FulfilResult
from store.records import CredentialInfo, CredentialRequest
from store.work import looks_like_id

MIN_SECRET_CHARS = 8
MAX_SECRET_CHARS = 512


class SecretProblem(StrEnum):
    EMPTY = "empty"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    WHITESPACE = "whitespace"


PROBLEMS = {
    SecretProblem.EMPTY: "Paste the key here.",
    SecretProblem.WHITESPACE: "A key has no spaces or line breaks: check what was pasted.",
    SecretProblem.TOO_SHORT: f"That is too short for an API key ({MIN_SECRET_CHARS}+ characters).",
    SecretProblem.TOO_LONG: f"That is too long for an API key (at most {MAX_SECRET_CHARS}).",
}


def check_secret(value: str) -> SecretProblem | None:
    """Sanity checks on a submitted key before anything is written."""
    if not value:
        return SecretProblem.EMPTY
    if any(char.isspace() for char in value):
        return SecretProblem.WHITESPACE
    if len(value) < MIN_SECRET_CHARS:
        return SecretProblem.TOO_SHORT
    if len(value) > MAX_SECRET_CHARS:
        return SecretProblem.TOO_LONG
    return None


class KeyDesk:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def listed(self, *, workspace_id: str, user_id: str) -> list[CredentialInfo]:
        """The person's stored credentials, never their values."""
        return await self._store.credentials.list_for_user(
            workspace_id=workspace_id, user_id=user_id
        )

    async def delete(self, *, workspace_id: str, user_id: str, provider: str) -> bool:
        """Delete one of the person's own credentials (audited as theirs)."""
        owner = Owner(workspace_id, user_id, provider[:64])
        return await self._store.credentials.delete(owner, actor_id=user_id)

    async def request(self, request_id: str) -> CredentialRequest | None:
        if not looks_like_id(request_id):
            return None
        return await self._store.requests.get(request_id)

    async def submit(self, request_id: str, *, user_id: str, secret: str) -> FulfilResult:
        """Store the key for the request's user and requeue its run (the store tells every
        scheduler listening once it commits). Called before the modal's ack, so it is one
        transaction and no reads before it."""
        if not looks_like_id(request_id):
            return FulfilResult(FulfilOutcome.NOT_FOUND)
        return await self._store.requests.fulfil(request_id, user_id=user_id, secret=secret)

    async def supply(
        self, *, workspace_id: str, user_id: str, provider: str, secret: str
    ) -> list[str]:
        """Store the person's key and resume every run of theirs waiting for it (as the
        modal does for one request): the runs resumed."""
        owner = Owner(workspace_id, user_id, provider[:64])
        return await self._store.requests.supply(owner, secret, actor_id=user_id)
