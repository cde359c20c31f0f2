"""The posting pace finds a channel's limit from Slack's 429s and settles just under it."""

from __future__ import annotations

from bot.posting_pace import CLOSE_ENOUGH, MARGIN, PostingPace


async def test_an_unlimited_channel_is_not_paced() -> None:
    pace = PostingPace()
    for _ in range(50):
        await pace.turn("C1")
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
    limited = 0
    for _ in range(5):
        pace.posted("C1")  # a burst: Slack's first 429 comes after it
    pace.limited("C1", retry_after_s=0.0)
    for _ in range(posts):
        spacing = pace.spacing("C1")
        assert spacing is not None
        if spacing < allowed_spacing:
            pace.limited("C1", retry_after_s=0.0)
            limited += 1
        else:
            pace.posted("C1")
    return limited


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
