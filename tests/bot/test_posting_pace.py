"""The posting pace finds a channel's limit from Slack's 429s and settles just under it."""

from __future__ import annotations

import asyncio

from bot.posting_pace import CLOSE_ENOUGH, MARGIN, PostingPace


async def test_an_unlimited_channel_is_not_paced() -> None:
    pace = PostingPace()
    for _ in range(50):
        assert pace.reserve("C1") == 0
        pace.posted("C1")
    assert pace.spacing("C1") is None


async def test_the_first_429_paces_the_channel_at_the_rate_its_posts_reached() -> None:
    pace = PostingPace()
    for _ in range(5):
        pace.posted("C1")
    pace.limited("C1", retry_after_s=0.0)
    assert pace.spacing("C1") == MARGIN / 5
    assert pace.spacing("C2") is None  # channels are paced apart


def _settle(pace: PostingPace, allowed_spacing: float, posts: int) -> int:
    """Post `posts` times into a channel that takes posts at most every `allowed_spacing`
    seconds (a 429 otherwise); the number of 429s."""
    for _ in range(5):
        pace.posted("C1")  # a burst: Slack's first 429 comes after it
    pace.limited("C1", retry_after_s=0.0)
    return _settle_paced(pace, allowed_spacing, posts)


async def test_the_pace_searches_its_way_to_just_under_the_limit() -> None:
    """Our own posts reached 5 a second but the channel takes 3 (others post there too):
    the pace starts too fast, backs off, then speeds up to the limit and stays there."""
    for allowed in (1 / 3, 1 / 5, 1.0):
        pace = PostingPace()
        limited = _settle(pace, allowed, posts=300)
        spacing = pace.spacing("C1")
        assert spacing is not None and allowed <= spacing <= allowed * CLOSE_ENOUGH * MARGIN
        assert limited <= 8, (allowed, limited)


async def test_a_limit_that_comes_down_is_followed() -> None:
    pace = PostingPace()
    _settle(pace, 1 / 5, posts=200)
    limited = _settle(pace, 1 / 2, posts=300)
    spacing = pace.spacing("C1")
    assert spacing is not None and 1 / 2 <= spacing <= 1 / 2 * CLOSE_ENOUGH * MARGIN
    assert limited <= 8


def _from_a_burst(pace: PostingPace, limit: int, posts: int) -> int:
    """Post as fast as allowed into a channel that takes `limit` posts a second: a burst of
    `limit` posts, Slack's first 429, then `posts` more; the number of 429s after the first."""
    for _ in range(limit):
        pace.posted("C1")
    pace.limited("C1", retry_after_s=0.0)
    return _settle_paced(pace, 1 / limit, posts)


def _settle_paced(pace: PostingPace, allowed_spacing: float, posts: int) -> int:
    limited = 0
    for _ in range(posts):
        spacing = pace.spacing("C1")
        assert spacing is not None
        if spacing < allowed_spacing:
            pace.limited("C1", retry_after_s=0.0)
            limited += 1
        else:
            pace.posted("C1")
    return limited


async def test_a_pace_learned_from_a_burst_is_probed_rarely() -> None:
    """Each failed probe costs a Retry-After: a short run (twenty-odd posts) pays for one
    at most, and each further probe waits twice as long as the one before."""
    for limit in (1, 5):
        assert _from_a_burst(PostingPace(), limit, posts=30) <= 1
        assert _from_a_burst(PostingPace(), limit, posts=300) <= 3


async def test_a_post_sent_late_pushes_the_next_one_back() -> None:
    """The loop sent a post later than its slot (Slack counts it when it arrives): the next
    slot is a spacing after that post was on its way, not after the slot it missed."""
    pace = PostingPace()
    pace.posted("C1")
    pace.limited("C1", retry_after_s=0.0)
    spacing = pace.spacing("C1")
    assert spacing is not None
    loop = asyncio.get_running_loop()
    assert pace.reserve("C1") == 0  # the slot is now...
    await asyncio.sleep(0.05)
    sent_at = loop.time()  # ...but the post went out later
    await asyncio.sleep(0.05)
    pace.posted("C1", sent_at=sent_at)
    wait = pace.reserve("C1")
    assert loop.time() + wait >= sent_at + spacing
