"""Scrub secrets from what leaves the runner: events, logs, exception summaries, and the
saved team state (an agent may repeat a key it was never meant to see)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

# Shapes of API keys that providers echo back, even partially masked ("sk-abc***xyz").
_KEY_PREFIXES = r"sk-|xox[abposr]-|xapp-|gh[pousr]_|github_pat_|glpat-|tvly-|gsk_|AIza|agt_"
# Where a key may start: not inside a word ("task-", "Gdańsk-"), but after an escape
# ("\\nsk-…" in a JSON log line) or a percent-encoded byte ("%22sk-…") it may.
_KEY_START = r"(?:(?<![^\W_])|(?<=\\[ntr])|(?<=%[0-9A-Fa-f]{2}))"
# A bearer token: with a digit in it, or long (prose about "Bearer tokens" is not one).
_BEARER = r"Bearer\s+(?:(?=[A-Za-z0-9._*\-]*\d)[A-Za-z0-9._*\-]{6,}|[A-Za-z0-9._*\-]{20,})"
_KEY_SHAPES = re.compile(rf"{_KEY_START}(?:(?:{_KEY_PREFIXES})[A-Za-z0-9_*\-]{{6,}}|{_BEARER})")
# Every key shape contains one of these: a text without any needs no look for shapes
# (several times cheaper than the look itself, and a saved team state is mostly such text).
_MAYBE_KEY = re.compile(rf"{_KEY_PREFIXES}|Bearer")
REDACTED = "[redacted]"


# Keys of the runs this process is driving right now (with a count: two runs may share one).
_in_use: dict[str, int] = {}
# Values the operator's tool configuration sends with `${env:NAME}`: hidden for good.
_configured: set[str] = set()


def always_hide(secret: str) -> None:
    """Hide `secret` from every `redact` from now on: a value from the environment that a
    tool sends (an MCP server's token, say) is as secret as a stored key."""
    if secret and len(secret) >= 4:
        _configured.add(secret)


@contextlib.contextmanager
def secret_in_use(secret: str) -> Iterator[None]:
    """While a run uses `secret`, every `redact` (and so every log record the app's filter
    scrubs) hides it too, whatever its shape: a library logging a model's echo of it at
    DEBUG cannot print it."""
    _in_use[secret] = _in_use.get(secret, 0) + 1
    try:
        yield
    finally:
        _in_use[secret] -= 1
        if not _in_use[secret]:
            del _in_use[secret]


def _to_hide(secrets: Iterable[str]) -> list[str]:
    """The given secrets, the runs' keys in use and the configured ones, long enough to
    hide (shorter ones would blank ordinary words)."""
    return [s for s in (*secrets, *_in_use, *_configured) if s and len(s) >= 4]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in _to_hide(secrets):
        text = text.replace(secret, REDACTED)
    if _MAYBE_KEY.search(text) is None:
        return text
    return _KEY_SHAPES.sub(REDACTED, text)


def redacted_json(value: Any, secrets: Iterable[str] = ()) -> str:
    """`json.dumps(redact_tree(value, secrets))`, without walking the tree when its text
    holds no secret and no key prefix. JSON escapes a string one character at a time, so
    a secret inside any string shows in the text as its own escaped form, and the key
    prefixes (letters, digits, "-", "_") as themselves: a text with neither has nothing to
    hide. A saved team state grows with the run, and walking it every turn was most of
    the cost of recording a long run's turn."""
    secrets = list(secrets)
    text = json.dumps(value)
    if _MAYBE_KEY.search(text) is None and not any(
        json.dumps(secret)[1:-1] in text for secret in _to_hide(secrets)
    ):
        return text
    return json.dumps(redact_tree(value, secrets))


def redact_tree(value: Any, secrets: Iterable[str] = ()) -> Any:
    """`redact` applied to every string inside JSON-like data (dicts, lists), so the data
    stays well-formed: redacting its serialised text could miss an escaped key."""
    known = [secret for secret in secrets if secret]
    if isinstance(value, str):
        return redact(value, known)
    if isinstance(value, dict):
        return {key: redact_tree(item, known) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_tree(item, known) for item in value]
    return value


# The end of a text that may be a key-shaped token still being written ("sk-ab", "gh"):
# too short yet for `_KEY_SHAPES`, so held back until it is complete.
_KEY_SHAPE_STARTED = re.compile(
    rf"{_KEY_START}(?:"
    r"(?:s|sk|x|xo|xox|xox[abposr]|xa|xap|xapp|g|gh|gh[pousr]|gi|git|gith|githu|github"
    r"|github_|github_p|github_pa|github_pat|gl|glp|glpa|glpat|t|tv|tvl|tvly|gs|gsk"
    r"|A|AI|AIz|a|ag|agt|B|Be|Bea|Bear|Beare|Bearer)\Z"
    rf"|(?:{_KEY_PREFIXES})[A-Za-z0-9_*\-]*\Z"
    r"|Bearer\s+[A-Za-z0-9._*\-]*\Z)"
)


def secrets_now() -> tuple[str, ...]:
    """The secrets `redact` hides at this moment (the runs' keys in use, configured ones):
    for text that is scrubbed later, when a run may have let go of its key."""
    return (*_in_use, *_configured)


def redact_unfinished(text: str, secrets: Iterable[str] = ()) -> str:
    """`redact` for text still being written (a streamed reply): it also holds back an end
    that may be the start of a secret or of a key-shaped token, which `redact` could only
    recognise once it is complete. Holding back keeps each result a prefix of the next."""
    secrets = tuple(secrets)
    cut = len(text)
    for secret in _to_hide(secrets):
        for size in range(min(len(secret) - 1, len(text)), 0, -1):
            if text.endswith(secret[:size]):
                cut = min(cut, len(text) - size)
                break
    shaped = _KEY_SHAPE_STARTED.search(text)
    if shaped is not None:
        cut = min(cut, shaped.start())
    return redact(text[:cut], secrets)
