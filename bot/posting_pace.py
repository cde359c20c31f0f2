"""Posts to a channel spaced at the rate Slack lets that channel take.

Slack limits `chat.postMessage` per channel (about one a second, short bursts allowed) and
answers past it with 429 and `Retry-After`. Bursting into the limit and then waiting out
every 429 leaves a channel idle for much of each second. Instead, the first 429 starts a
pace for the channel: posts are spaced at the rate our own posts reached in the second
before (others may post there too, so that is a lower bound). Every `PROBE_AFTER` posts
without a 429 prove the spacing good, and the next posts try faster: a tenth faster while
nothing has been too fast, then halfway to the slowest spacing that drew a 429. A 429
marks its spacing too fast and goes back to the last good one (with none yet, to twice as
slow). Once good and too fast are within 6% the search stops: the channel settles just
under its limit after a few 429s, and its backlog drains at the limit.

A probe that fails costs the channel a whole `Retry-After` (a second at Slack's rate, two
posts' time), and the first pace, taken from a burst into the limit, is usually right
already: so each failed probe doubles the posts before the next one. A run of twenty
messages pays for one probe at most, a long one still finds a higher limit. A channel
quiet for a minute is forgotten.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

WINDOW_S = 1.0  # Slack's limit is per second per channel
MARGIN = 1.02  # the first pace: a little under the rate our posts reached
PROBE_AFTER = 20  # posts at one spacing without a 429 prove it good (at first)
MOST_PROBE_AFTER = 160  # the wait between probes doubles per failed probe up to this
FASTER = 0.9  # a probe's spacing against the good one, while nothing was too fast
CLOSE_ENOUGH = 1.06  # good / too fast: the search is over
SLOWER = 2.0  # after a 429 with nothing proven good yet
FORGET_S = 60.0


@dataclass
class _Channel:
    posted: deque[float]  # answer times of the last second's posts
    spacing: float | None = None  # seconds between posts, once Slack said 429
    good: float | None = None  # the fastest spacing that went without a 429
    too_fast: float = 0.0  # the slowest spacing that drew one
    streak: int = 0  # posts at `spacing` without a 429
    probe_after: int = PROBE_AFTER  # posts a spacing takes to be proven good
    next_at: float = 0.0  # loop time the next post may go


class PostingPace:
    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}
        self._forgot_at = 0.0  # quiet channels are looked for once in a while, not per post

    def spacing(self, channel: str) -> float | None:
        """The channel's current spacing in seconds (None: not paced)."""
        known = self._channels.get(channel)
        return known.spacing if known else None

    def reserve(self, channel: str) -> float:
        """Take the channel's next slot; the seconds to wait until it comes (0: now)."""
        now = asyncio.get_running_loop().time()
        self._forget(now)
        known = self._channels.setdefault(channel, _Channel(deque()))
        at = max(now, known.next_at)
        known.next_at = at + (known.spacing or 0.0)
        return at - now

    def posted(self, channel: str, *, sent_at: float | None = None) -> None:
        """A post to the channel was answered (`sent_at`: loop time it was sent)."""
        now = asyncio.get_running_loop().time()
        known = self._channels.setdefault(channel, _Channel(deque()))
        known.posted.append(now)
        while now - known.posted[0] > WINDOW_S:
            known.posted.popleft()
        if known.spacing is None:
            return
        if sent_at is not None:
            # Slack counts a post when it arrives, some time between its sending and its
            # answer (later than planned when the loop or the network was slow): the next
            # one is spaced from halfway, so a late arrival does not bring it too close.
            known.next_at = max(known.next_at, (sent_at + now) / 2 + known.spacing)
        known.streak += 1
        if known.streak < known.probe_after:
            return
        known.good, known.streak = known.spacing, 0
        if not known.too_fast:
            known.spacing = known.spacing * FASTER
        elif known.good / known.too_fast > CLOSE_ENOUGH:
            known.spacing = (known.good + known.too_fast) / 2

    def limited(self, channel: str, retry_after_s: float) -> None:
        """Slack answered 429: slow the channel down, and wait as long as Slack asked."""
        now = asyncio.get_running_loop().time()
        known = self._channels.setdefault(channel, _Channel(deque()))
        if known.spacing is None:
            taken = sum(1 for at in known.posted if now - at <= WINDOW_S)
            known.spacing = WINDOW_S * MARGIN / max(1, taken)
        else:
            if known.good is not None and known.spacing < known.good:  # a probe failed
                known.probe_after = min(known.probe_after * 2, MOST_PROBE_AFTER)
            known.too_fast = max(known.too_fast, known.spacing)
            slower = known.good if known.good is not None else known.spacing * SLOWER
            known.spacing = max(slower, known.too_fast * MARGIN)
            if known.good is not None and known.good <= known.too_fast:
                known.good = None  # what was good is too fast now: the limit came down
        known.spacing = min(known.spacing, WINDOW_S * 10)
        known.streak = 0
        known.next_at = max(known.next_at, now + retry_after_s)

    def _forget(self, now: float) -> None:
        if now - self._forgot_at < FORGET_S:
            return
        self._forgot_at = now
        quiet = [
            name
            for name, known in self._channels.items()
            if max(known.next_at, known.posted[-1] if known.posted else 0.0) < now - FORGET_S
        ]
        for name in quiet:
            del self._channels[name]
