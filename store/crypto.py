"""Credential encryption: MultiFernet over SERVER_SECRET_KEY, with an owner-bound envelope.

The plaintext that Fernet encrypts is a small JSON envelope naming workspace, user and
provider next to the secret. Decryption checks those against the row being read, so
ciphertext copied onto another owner's row is refused even though the key is the same.
Errors never carry the secret or a key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENVELOPE_VERSION = 1


class CredentialError(Exception):
    """Base class for credential problems; messages are safe to log and show."""


class CredentialDecryptError(CredentialError):
    """The ciphertext does not open with any configured key, or was altered."""


class CredentialOwnerMismatch(CredentialError):
    """The ciphertext opened but belongs to another workspace, user or provider."""


class SecretKeyError(CredentialError):
    """SERVER_SECRET_KEY holds something that is not a Fernet key."""


@dataclass(frozen=True)
class Owner:
    """Who a credential belongs to; a workspace-wide credential has user_id '*'."""

    workspace_id: str
    user_id: str
    provider: str


class CredentialCipher:
    """Encrypts with the first key, decrypts with any: the MultiFernet rotation contract."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretKeyError("no secret key configured")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise SecretKeyError(
                    f"SERVER_SECRET_KEY entry {position} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes)"
                ) from None
        self._multi = MultiFernet(fernets)
        self._primary = fernets[0]

    def encrypt(self, owner: Owner, secret: str) -> bytes:
        envelope = {
            "v": ENVELOPE_VERSION,
            "ws": owner.workspace_id,
            "u": owner.user_id,
            "p": owner.provider,
            "s": secret,
        }
        return self._multi.encrypt(json.dumps(envelope, separators=(",", ":")).encode())

    def decrypt(self, owner: Owner, token: bytes) -> str:
        envelope = self._open(token)
        bound_to = (envelope.get("ws"), envelope.get("u"), envelope.get("p"))
        if bound_to != (owner.workspace_id, owner.user_id, owner.provider):
            raise CredentialOwnerMismatch(
                f"stored {owner.provider} credential is bound to another owner and was refused"
            )
        return str(envelope["s"])

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt under the newest key (after which older keys may be dropped)."""
        try:
            return self._multi.rotate(token)
        except InvalidToken:
            raise CredentialDecryptError(_DECRYPT_FAILED) from None

    def is_current(self, token: bytes) -> bool:
        """True when the newest key alone opens the token."""
        try:
            self._primary.decrypt(token)
        except InvalidToken:
            return False
        return True

    def _open(self, token: bytes) -> dict[str, object]:
        try:
            raw = self._multi.decrypt(token)
        except InvalidToken:
            raise CredentialDecryptError(_DECRYPT_FAILED) from None
        try:
            envelope = json.loads(raw)
        except ValueError:
            raise CredentialDecryptError("stored credential has an unknown format") from None
        if not isinstance(envelope, dict) or envelope.get("v") != ENVELOPE_VERSION:
            raise CredentialDecryptError("stored credential has an unknown format")
        return envelope


_DECRYPT_FAILED = (
    "stored credential could not be decrypted: SERVER_SECRET_KEY does not hold the key it was "
    "written with, or the data was altered"
)


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")
