"""What the Slack emulator records: calls it answered, failures to inject, Socket Mode traffic.

Plain data types shared by the emulator's modules and read by tests
(``slack.calls``, ``slack.socket_connections``, ``slack.socket_envelopes``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FailureRule",
    "JsonDict",
    "RecordedCall",
    "SocketConnection",
    "SocketEnvelope",
]

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class RecordedCall:
    """One HTTP request the emulator answered, kept so tests can assert on traffic.

    ``params`` merges query string and body, with JSON-encoded fields (``blocks``,
    ``view``...) decoded, so assertions do not depend on how the client encoded them.
    ``at`` is ``time.monotonic()`` when the answer was produced.
    """

    method: str
    params: JsonDict
    headers: dict[str, str]
    status: int
    response: JsonDict
    at: float
    path: str = ""

    @property
    def ok(self) -> bool:
        """Whether Slack would have reported success for this call."""
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        """The Slack error code, if the call failed."""
        value = self.response.get("error")
        return str(value) if value is not None else None


@dataclass
class FailureRule:
    """An injected failure for one method: either the next ``times`` calls, or a ratio.

    Ratio rules draw from their own seeded ``random.Random`` so a run is reproducible no
    matter what else in the process uses randomness.
    """

    status: int
    retry_after: int | None
    error: str
    times: int | None = None
    ratio: float | None = None
    rng: random.Random | None = None

    def triggers(self) -> bool:
        """Consume one decision: does this call fail?"""
        if self.times is not None:
            if self.times <= 0:
                return False
            self.times -= 1
            return True
        assert self.ratio is not None and self.rng is not None
        return self.rng.random() < self.ratio


@dataclass
class SocketConnection:
    """One websocket the app opened on a URL from ``apps.connections.open``.

    ``received`` holds every JSON message the app sent on it (its acknowledgements).
    """

    id: str
    ticket: str
    opened_at: float
    closed_at: float | None = None
    received: list[JsonDict] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass
class SocketEnvelope:
    """One envelope delivered to the app over Socket Mode, and the ack it got (if any)."""

    envelope: JsonDict
    connection_id: str
    sent_at: float
    ack: JsonDict | None = None
    acked_at: float | None = None

    @property
    def envelope_id(self) -> str:
        return str(self.envelope["envelope_id"])

    @property
    def type(self) -> str:
        return str(self.envelope["type"])

    @property
    def ack_latency(self) -> float | None:
        """Seconds between sending the envelope and receiving its ack."""
        return None if self.acked_at is None else self.acked_at - self.sent_at
