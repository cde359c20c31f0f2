"""One-time sign-in codes for the local playground.

In local mode the app prints one URL with a code; opening it trades the code for an API
token kept in an HttpOnly, SameSite=Strict cookie, so the browser's scripts never hold it
and other sites cannot send it. A code works once and for an hour: a link that leaked from
a terminal's scrollback is dead once used, and a new one comes with each start.
"""

from __future__ import annotations

import hmac
import secrets
import time

CODE_LIFETIME_S = 3600.0
LOCAL_USER = "playground"  # the person the local playground acts for (workspace "local")


class LoginCodes:
    def __init__(self, *, lifetime_s: float = CODE_LIFETIME_S) -> None:
        self._lifetime_s = lifetime_s
        self._codes: dict[str, float] = {}  # code -> when it stops working (monotonic)

    def issue(self) -> str:
        code = secrets.token_urlsafe(24)
        self._codes[code] = time.monotonic() + self._lifetime_s
        return code

    def redeem(self, code: str) -> bool:
        """True once for a code issued here and not yet expired; False ever after."""
        now = time.monotonic()
        self._codes = {c: until for c, until in self._codes.items() if until > now}
        for known in list(self._codes):
            if hmac.compare_digest(known.encode(), code.encode()):
                del self._codes[known]
                return True
        return False
