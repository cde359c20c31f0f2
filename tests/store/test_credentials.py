"""Credentials: round trip, listing, deletion, owner binding, rotation, audit."""

from __future__ import annotations

from cryptography.fernet import Fernet
from sqlalchemy import select, update

from store import Store
from store.crypto import CredentialCipher, CredentialDecryptError, CredentialOwnerMismatch, Owner
from store.models import CredentialRow
from store.settings import load_settings
from tests.db import audit_actions

ALICE = Owner("T1", "UALICE", "openrouter")
BOB = Owner("T1", "UBOB", "openrouter")


async def test_round_trip_list_and_delete(store: Store) -> None:
    await store.credentials.put(ALICE, "sk-alice-1", actor_id="UALICE")
    await store.credentials.put(Owner("T1", "UALICE", "github"), "ghp-alice", actor_id="UALICE")
    await store.credentials.put(BOB, "sk-bob", actor_id="UBOB")

    assert await store.credentials.reveal(ALICE, actor_id="UALICE") == "sk-alice-1"
    listed = await store.credentials.list_for_user(workspace_id="T1", user_id="UALICE")
    assert [info.provider for info in listed] == ["github", "openrouter"]
    assert not any(hasattr(info, "secret") or hasattr(info, "ciphertext") for info in listed)

    await store.credentials.put(ALICE, "sk-alice-2", actor_id="UALICE")
    assert await store.credentials.reveal(ALICE, actor_id="UALICE") == "sk-alice-2"

    assert await store.credentials.delete(ALICE, actor_id="UALICE") is True
    assert await store.credentials.delete(ALICE, actor_id="UALICE") is False
    assert await store.credentials.reveal(ALICE, actor_id="UALICE") is None
    assert await store.credentials.reveal(BOB, actor_id="UBOB") == "sk-bob"

    actions = await audit_actions(store, "T1")
    assert actions.count("credential_stored") == 4
    assert "credential_used" in actions and "credential_deleted" in actions


async def _move_ciphertext(store: Store, source: Owner, target: Owner) -> None:
    async with store.engine.begin() as connection:
        ciphertext = await connection.scalar(
            select(CredentialRow.ciphertext).where(
                CredentialRow.user_id == source.user_id, CredentialRow.provider == source.provider
            )
        )
        await connection.execute(
            update(CredentialRow)
            .where(
                CredentialRow.user_id == target.user_id, CredentialRow.provider == target.provider
            )
            .values(ciphertext=ciphertext)
        )


async def test_ciphertext_moved_to_another_user_does_not_decrypt(store: Store) -> None:
    await store.credentials.put(ALICE, "sk-alice-secret", actor_id="UALICE")
    await store.credentials.put(BOB, "sk-bob-secret", actor_id="UBOB")
    await _move_ciphertext(store, ALICE, BOB)
    try:
        await store.credentials.reveal(BOB, actor_id="UBOB")
    except CredentialOwnerMismatch as exc:
        assert "sk-alice-secret" not in str(exc)
    else:
        raise AssertionError("a ciphertext copied to another user's row decrypted")


async def test_ciphertext_moved_to_another_provider_does_not_decrypt(store: Store) -> None:
    github = Owner("T1", "UALICE", "github")
    await store.credentials.put(ALICE, "sk-alice-secret", actor_id="UALICE")
    await store.credentials.put(github, "ghp-secret", actor_id="UALICE")
    await _move_ciphertext(store, ALICE, github)
    try:
        await store.credentials.reveal(github, actor_id="UALICE")
    except CredentialOwnerMismatch:
        pass
    else:
        raise AssertionError("a ciphertext copied to another provider's row decrypted")


async def test_rotation_then_old_key_dropped(database_url: str) -> None:
    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    owners = [Owner("T1", f"U{i}", "openrouter") for i in range(5)]

    first = await Store.open(load_settings(database_url=database_url, server_secret_key=k1))
    for owner in owners:
        await first.credentials.put(owner, f"sk-{owner.user_id}", actor_id=owner.user_id)
    await first.close()

    both = await Store.open(
        load_settings(database_url=database_url, server_secret_key=f"{k2},{k1}")
    )
    assert await both.credentials.rotate_all() == (5, 0)
    assert await both.credentials.rotate_all() == (0, 5)
    await both.close()

    only_new = await Store.open(load_settings(database_url=database_url, server_secret_key=k2))
    for owner in owners:
        assert await only_new.credentials.reveal(owner, actor_id="audit") == f"sk-{owner.user_id}"
    await only_new.close()

    only_old = await Store.open(load_settings(database_url=database_url, server_secret_key=k1))
    try:
        await only_old.credentials.reveal(owners[0], actor_id="audit")
    except CredentialDecryptError as exc:
        assert k1 not in str(exc) and "sk-" not in str(exc)
    else:
        raise AssertionError("the dropped key still opened a rotated row")
    await only_old.close()


def test_tampered_ciphertext_gives_a_clean_domain_error(secret_key: str) -> None:
    cipher = CredentialCipher([secret_key])
    token = bytearray(cipher.encrypt(ALICE, "sk-tamper-canary"))
    token[40] = ord("A") if token[40] != ord("A") else ord("B")
    try:
        cipher.decrypt(ALICE, bytes(token))
    except CredentialDecryptError as exc:
        assert "sk-tamper-canary" not in str(exc) and secret_key not in str(exc)
        assert exc.__cause__ is None and exc.__suppress_context__
    else:
        raise AssertionError("tampered ciphertext decrypted")


def test_bad_key_is_named_without_echoing_it() -> None:
    from store.crypto import SecretKeyError

    try:
        CredentialCipher(["not-a-fernet-key-but-secret"])
    except SecretKeyError as exc:
        assert "not-a-fernet-key-but-secret" not in str(exc)
        assert "entry 1" in str(exc)
    else:
        raise AssertionError("an invalid key was accepted")
