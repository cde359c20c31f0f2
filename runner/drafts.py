"""Agent replies still being written: the model's streamed chunks, held in this process.

While an agent's model call streams (`STREAMING`, on by default), the executor adds each
chunk here; the Slack publisher of the same process shows the growing text in the run's
thread and, when the turn's messages are recorded, turns that live message into the
finished one. A draft is a preview only: nothing in it is stored, a crash loses it (the
turn is taken again from the last saved state) and a replica that is not running the run
never sees it, so it can only make a reply appear sooner, never change what is recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.redact import redact_unfinished, secrets_now

Listener = Callable[[str], object]  # called with the run id

log = logging.getLogger(__name__)


@dataclass
class Draft:
    """The text one agent has written so far in one model call of a run's turn."""

    run_id: str
    source: str
    turn: int
    identity: dict[str, str] | None
    message_id: str | None = None
    chunks: list[str] = field(default_factory=list)
    version: int = 0  # grows with every chunk; a new model call restarts the text
    first_chunk_at: float = 0.0  # time.monotonic() of the first chunk
    # The secrets in use while the chunks came: the text is read later, maybe after the
    # run has let go of its key, and must still not show it.
    secrets: set[str] = field(default_factory=set)

    @property
    def text(self) -> str:
        """What may be shown: the chunks so far, without any secret the run held while
        they came, nor the start of one still being written."""
        return redact_unfinished("".join(self.chunks), self.secrets)


class Drafts:
    """The open drafts, one per run at most, and who wants to hear about changes."""

    def __init__(self) -> None:
        self._open: dict[str, Draft] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def get(self, run_id: str) -> Draft | None:
        return self._open.get(run_id)

    def add(
        self,
        run_id: str,
        *,
        source: str,
        chunk: str,
        turn: int,
        identity: dict[str, str] | None = None,
        message_id: str | None = None,
    ) -> None:
        """One streamed chunk. Another agent, or another model call of the same agent (its
        reply after a tool ran), starts the draft afresh."""
        draft = self._open.get(run_id)
        if draft is None or draft.source != source or draft.message_id != message_id:
            version = draft.version + 1 if draft is not None else 1
            draft = Draft(run_id, source, turn, identity, message_id, version=version - 1)
            draft.first_chunk_at = time.monotonic()
            self._open[run_id] = draft
        if not chunk:
            return
        draft.secrets.update(secrets_now())
        draft.chunks.append(chunk)
        draft.version += 1
        self._tell(run_id)

    def close(self, run_id: str) -> None:
        """The turn is over (its messages recorded, or it stopped): no more chunks."""
        if self._open.pop(run_id, None) is not None:
            self._tell(run_id)

    def _tell(self, run_id: str) -> None:
        """A listener's failure is its own: it must never break the turn being written."""
        for listener in self._listeners:
            try:
                listener(run_id)
            except Exception:
                log.exception("draft listener failed", extra={"run_id": run_id})
