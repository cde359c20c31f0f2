"""Scrub secrets from text that leaves the runner (events, logs, exception summaries)."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Shapes of API keys that providers echo back, even partially masked ("sk-abc***xyz").
_KEY_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_*\-]{6,}|xox[abposr]-[A-Za-z0-9\-]{6,}|xapp-[A-Za-z0-9\-]{6,}"
    r"|Bearer\s+[A-Za-z0-9._*\-]{6,})"
)
REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(REDACTED, text)
