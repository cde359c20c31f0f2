"""Checks on a key typed into the credential modal, before anything is written.

Answers are problems, never the value: the modal shows a friendly inline error for each."""

from __future__ import annotations

from enum import StrEnum

MIN_SECRET_CHARS = 8
MAX_SECRET_CHARS = 512


class SecretProblem(StrEnum):
    EMPTY = "empty"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    WHITESPACE = "whitespace"


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
